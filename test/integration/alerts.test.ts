/**
 * Alerts to DingTalk, end to end: the whole platform in this process,
 * simulated cabinets over real MQTT, and a fake DingTalk robot endpoint
 * (test/support/fake-dingtalk.ts) that checks tokens, timestamps, signatures,
 * keywords and the rate exactly as DingTalk documents them, and shows each
 * msgUuid once.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { ServiceBroker } from "moleculer";
import { SimulatedCabinet } from "../../tools/simulator/cabinet";
import { FakeDingTalk, type ShownMessage } from "../support/fake-dingtalk";
import { registerCabinet, type RegisteredCabinet } from "../support/catalog";
import { ADMIN, newPhone, startTestPlatform, until, type TestPlatform } from "../support/platform";

jest.setTimeout(60_000);

const SECRET = "SEC0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd";
const fast = (groupWaitMs: number, other: Record<string, unknown> = {}) =>
	JSON.stringify(Object.fromEntries(["P1", "P2", "P3"].map(s => [s, { groupWaitMs, groupIntervalMs: 300, repeatIntervalMs: 3600_000, ...other }])));

const mentions = (m: ShownMessage, what: string) => m.text.includes(what);
const signal = (b: ServiceBroker, rule: string, labels: Record<string, string>, active = true) =>
	b.call("alerts.signal", { rule, labels, active, summary: `${rule} ${Object.values(labels).join(" ")}` });

describe("alert lifecycle, inhibition and silences", () => {
	const fake = new FakeDingTalk();
	let p: TestPlatform;
	let broker: ServiceBroker;
	let mqttUrl: string;
	let token: string;
	const sims: SimulatedCabinet[] = [];

	beforeAll(async () => {
		await fake.start();
		fake.addRobot({ token: "t-ops", secret: SECRET, keyword: "告警" });
		p = await startTestPlatform({
			HEARTBEAT_SEC: "1", ALERTS_TICK_MS: "100", ALERT_CLEAR_FOR_MS: "200",
			// P2 waits a second, so cabinets of one point going down together are judged together.
			ALERTS_TIMING: JSON.stringify({ P1: { groupWaitMs: 200, groupIntervalMs: 300 }, P2: { groupWaitMs: 1000, groupIntervalMs: 300 }, P3: { groupWaitMs: 200, groupIntervalMs: 300 } }),
			DINGTALK_ROBOTS: JSON.stringify([{ name: "ops", url: fake.url("t-ops"), secret: SECRET, keyword: "告警", atMobiles: ["13900000000"] }]),
		});
		broker = p.node.broker;
		mqttUrl = (await broker.call<{ url: string }, object>("hardware.endpoint", {})).url;
		token = (await p.api("POST", "/api/v1/auth/login", { login: ADMIN.username, password: ADMIN.password })).body.accessToken;
	});
	afterAll(async () => {
		await Promise.all(sims.map(s => s.stop().catch(() => undefined)));
		await p.stop();
		await fake.stop();
	});

	async function online(reg: RegisteredCabinet) {
		const sim = new SimulatedCabinet({ cabinetId: reg.cabinetId, secret: reg.secret, doors: reg.doors, mqttUrl, heartbeatSec: 1 });
		sims.push(sim);
		await sim.start();
		await until("the cabinet online", async () => (await broker.call<any, any>("doors.cabinet", { cabinetId: reg.cabinetId })).online);
		return sim;
	}

	let point: RegisteredCabinet[];
	let simsOfPoint: SimulatedCabinet[];

	it("sends a cabinet going offline as one signed markdown message, and its return as the resolved one", async () => {
		const a = await registerCabinet(broker, [{ no: 1, size: "M" }]);
		point = [a, await registerCabinet(broker, [{ no: 1, size: "S" }], a), await registerCabinet(broker, [{ no: 1, size: "L" }], a)];
		simsOfPoint = await Promise.all(point.map(online));

		simsOfPoint[0].crash(); // its last will: offline at once
		const firing = await fake.until("the offline message", () => fake.messages.find(m => mentions(m, a.cabinetId)));
		expect(firing.title).toBe("告警 [P2] CabinetOffline");
		expect(firing.text).toContain("🔴 告警 FIRING");
		expect(firing.text).toContain(`pointId=${a.pointId}`);
		expect(firing.text).toMatch(/开始 Started: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(UTC\+8\)/);
		expect(firing.atMobiles).toEqual([]); // P2: nobody is woken up

		await simsOfPoint[0].start();
		const resolved = await fake.until("the resolved message", () => fake.messages.find(m => m !== firing && mentions(m, a.cabinetId)));
		expect(resolved.text).toContain("🟢 恢复 RESOLVED");
		expect(resolved.msgUuid).not.toBe(firing.msgUuid);
		expect(fake.messages.filter(m => mentions(m, a.cabinetId))).toHaveLength(2);
		// Every request was signed right and carried the keyword: DingTalk took each one.
		expect(fake.requests.every(r => r.errcode === 0)).toBe(true);
	});

	it("mutes a point's cabinet alerts while half its cabinets are offline, and sends the point alert instead (P1, with @)", async () => {
		const [, b, c] = point;
		simsOfPoint[1].crash();
		simsOfPoint[2].crash();
		const pointMsg = await fake.until("the point message", () => fake.messages.find(m => m.title.includes("PointOffline")));
		expect(pointMsg.title).toBe("告警 [P1] PointOffline");
		expect(pointMsg.text).toContain("2 of 3 cabinets offline");
		expect(pointMsg.atMobiles).toEqual(["13900000000"]);
		expect(pointMsg.text).toContain("@13900000000");

		// A witness alert raised now waits the same P2 group_wait as the cabinets' did: once it is
		// delivered, a cabinet alert that was not muted would have been delivered too.
		await signal(broker, "UnlockFailureRate", { cabinetId: "cab_witness_1" });
		await fake.until("the witness", () => fake.messages.find(m => mentions(m, "cab_witness_1")));
		expect(fake.messages.filter(m => mentions(m, b.cabinetId) || mentions(m, c.cabinetId))).toEqual([]);

		const list = await p.api("GET", "/api/v1/alerts?state=firing", undefined, { token });
		expect(list.status).toBe(200);
		const cabB = list.body.rows.find((r: any) => r.labels.cabinetId === b.cabinetId);
		const pointAlert = list.body.rows.find((r: any) => r.name === "PointOffline");
		expect(cabB).toMatchObject({ name: "CabinetOffline", severity: "P2", state: "firing", inhibitedBy: pointAlert.id });
		expect(typeof cabB.startsAt).toBe("string");

		// Back online: the point alert resolves; the muted cabinet alerts were never sent, so no "resolved" for them.
		await Promise.all([simsOfPoint[1].start(), simsOfPoint[2].start()]);
		await fake.until("the point resolved", () => fake.messages.find(m => m.title.includes("PointOffline") && m.text.includes("RESOLVED")));
		await signal(broker, "UnlockFailureRate", { cabinetId: "cab_witness_2" });
		await fake.until("the second witness", () => fake.messages.find(m => mentions(m, "cab_witness_2")));
		expect(fake.messages.filter(m => mentions(m, b.cabinetId) || mentions(m, c.cabinetId))).toEqual([]);
	});

	it("silences exactly the alerts its matchers match, until it is expired", async () => {
		const make = await p.api("POST", "/api/v1/alerts/silences", {
			matchers: [{ label: "cabinetId", value: "cab_silenced_[0-9]+", regex: true }], endsAt: new Date(Date.now() + 3600_000).toISOString(), comment: "维修中 under repair",
		}, { token });
		expect(make.status).toBe(201);
		expect(make.body).toMatchObject({ id: expect.any(String), comment: "维修中 under repair", createdBy: expect.any(String) });
		await signal(broker, "DoorFault", { cabinetId: "cab_silenced_1", doorId: "cab_silenced_1:1" });
		await signal(broker, "DoorFault", { cabinetId: "cab_loud_1", doorId: "cab_loud_1:1" });
		await fake.until("the loud one", () => fake.messages.find(m => mentions(m, "cab_loud_1")));
		expect(fake.messages.filter(m => mentions(m, "cab_silenced_1"))).toEqual([]);
		const list = await p.api("GET", "/api/v1/alerts?state=firing", undefined, { token });
		expect(list.body.rows.find((r: any) => r.labels.cabinetId === "cab_silenced_1")).toMatchObject({ silencedBy: make.body.id });
		expect(list.body.rows.find((r: any) => r.labels.cabinetId === "cab_loud_1").silencedBy).toBeUndefined();

		const expire = await p.api("DELETE", `/api/v1/alerts/silences/${make.body.id}`, undefined, { token });
		expect(expire.status).toBe(200);
		await fake.until("the silenced one, once expired", () => fake.messages.find(m => mentions(m, "cab_silenced_1")));
	});

	it("refuses bad silences with a clear error and writes nothing; only staff may read or silence", async () => {
		const bad = [
			{ matchers: [], endsAt: new Date(Date.now() + 60_000).toISOString(), comment: "x" },
			{ matchers: [{ label: "a", value: "b" }], endsAt: new Date(Date.now() - 60_000).toISOString(), comment: "past" },
			{ matchers: [{ label: "a", value: "(", regex: true }], endsAt: new Date(Date.now() + 60_000).toISOString(), comment: "bad regex" },
			{ matchers: [{ label: "a", value: "b", extra: 1 }], endsAt: new Date(Date.now() + 60_000).toISOString(), comment: "unknown field" },
			{ matchers: [{ label: "a", value: "b" }], endsAt: "tomorrow", comment: "not a date" },
		];
		const silences = () => (p.node.broker.getLocalService("alerts") as any).repos.silences.count();
		const before = await silences();
		for (const body of bad) {
			const r = await p.api("POST", "/api/v1/alerts/silences", body, { token });
			expect([r.status, r.body.type]).toEqual([422, "VALIDATION_ERROR"]);
		}
		expect(await silences()).toBe(before);
		expect((await p.api("DELETE", "/api/v1/alerts/silences/sil_000000nope", undefined, { token })).status).toBe(404);
		const phone = newPhone();
		await p.api("POST", "/api/v1/auth/register", { phone, password: "user-pass-123" });
		const user = (await p.api("POST", "/api/v1/auth/login", { login: phone, password: "user-pass-123" })).body.accessToken;
		expect((await p.api("GET", "/api/v1/alerts", undefined, { token: user })).status).toBe(403);
		expect((await p.api("POST", "/api/v1/alerts/silences", { matchers: [{ label: "a", value: "b" }], endsAt: new Date(Date.now() + 60_000).toISOString(), comment: "x" }, { token: user })).status).toBe(403);
		expect((await p.api("GET", "/api/v1/alerts")).status).toBe(401);
	});
});

/** Every door alert of these cabinets appears in exactly one shown message. */
function deliveredOnce(fake: FakeDingTalk, ids: string[]): boolean {
	return ids.every(id => fake.messages.filter(m => m.text.includes(`${id}:1`)).length === 1);
}
const doorAlert = (i: string) => ({ cabinetId: i, doorId: `${i}:1` });
/**
 * Every door alert of these cabinets shown, and never twice in one group. (A notification whose answer was
 * lost may also reach the fallback's group when its robot is resting: at least once, never lost.)
 */
function deliveredOncePerGroup(fake: FakeDingTalk, ids: string[]): boolean {
	const tokens = [...new Set(fake.messages.map(m => m.token))];
	return ids.every(id => fake.messages.some(m => m.text.includes(`${id}:1`)) && tokens.every(t => fake.messagesOf(t).filter(m => m.text.includes(`${id}:1`)).length <= 1));
}

describe("a burst of 200 alerts", () => {
	it("reaches the group within the robot's 20 requests a minute, in digests, P1 first", async () => {
		const fake = await new FakeDingTalk().start();
		fake.addRobot({ token: "t-burst", secret: SECRET });
		// Real DingTalk numbers: 20 a minute. Ticks are driven by the test, so everything is due at once.
		const p = await startTestPlatform({
			ALERTS_TICK_MS: "60000", ALERTS_TIMING: fast(0),
			DINGTALK_ROBOTS: JSON.stringify([{ name: "burst", url: fake.url("t-burst"), secret: SECRET }]),
		});
		try {
			const b = p.node.broker;
			const p3 = Array.from({ length: 180 }, (_, i) => `cab_p3_${i}`);
			const p1 = Array.from({ length: 20 }, (_, i) => `cab_p1_${i}`);
			await Promise.all([...p3.map(id => signal(b, "DoorLeftOpen", doorAlert(id))), ...p1.map(id => signal(b, "DoorForcedOpen", doorAlert(id)))]);
			await b.call("alerts.tickNow");
			await fake.until("all 200 delivered", () => deliveredOnce(fake, [...p1, ...p3]));
			expect(fake.maxRequestsPerWindow("t-burst")).toBeLessThanOrEqual(20);
			expect(fake.rateViolations).toBe(0);
			expect(fake.messages.length).toBeLessThanOrEqual(10);
			const all = fake.messages.map(m => m.text).join("\n");
			expect(Math.max(...p1.map(id => all.indexOf(`${id}:1`)))).toBeLessThan(Math.min(...p3.map(id => all.indexOf(`${id}:1`))));
			expect(fake.messages[0].title).toMatch(/^\[P1\] 25 告警 firing/);
			expect(fake.messages.every(m => Buffer.byteLength(m.text) < 20_000 && !m.text.includes("more / 另有"))).toBe(true);
		} finally {
			await p.stop();
			await fake.stop();
		}
	});

	it("never goes over the rate when the window is nearly spent: what does not fit waits for the next window", async () => {
		// The same rule at a scale a test can wait for: 20 requests per 2 s.
		const fake = await new FakeDingTalk({ windowMs: 2000 }).start();
		fake.addRobot({ token: "t-tight", secret: SECRET });
		const p = await startTestPlatform({
			ALERTS_TICK_MS: "100", ALERTS_TIMING: fast(0), DINGTALK_RATE_WINDOW_MS: "2000",
			DINGTALK_ROBOTS: JSON.stringify([{ name: "tight", url: fake.url("t-tight"), secret: SECRET }]),
		});
		try {
			const b = p.node.broker;
			const early = Array.from({ length: 15 }, (_, i) => `cab_early_${i}`);
			for (const id of early) await signal(b, "DoorFault", doorAlert(id));
			await fake.until("15 single messages", () => fake.messages.length >= 15);
			const burst = Array.from({ length: 200 }, (_, i) => `cab_late_${i}`);
			await Promise.all(burst.map(id => signal(b, i2sev(id), doorAlert(id))));
			await fake.until("all delivered", () => deliveredOnce(fake, [...early, ...burst]), 30_000);
			expect(fake.maxRequestsPerWindow("t-tight")).toBeLessThanOrEqual(20);
			expect(fake.rateViolations).toBe(0);
			expect(fake.requests.every(r => r.errcode === 0)).toBe(true);
		} finally {
			await p.stop();
			await fake.stop();
		}
	});
});
const i2sev = (id: string) => (Number(id.split("_").pop()) % 10 === 0 ? "DoorForcedOpen" : "DoorLeftOpen");

describe("throttling, failures and a restart in the middle", () => {
	it("delivers every alert, each msgUuid once per group, through throttling, failures and a restart", async () => {
		const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "lockers-alerts-"));
		// The ops robot is shared with someone else: DingTalk lets it send only 4 more before 130101.
		const fake = await new FakeDingTalk({ blockMs: 1500, slowMs: 1500 }).start();
		fake.addRobot({ token: "t-ops", secret: SECRET, perWindow: 4 });
		fake.addRobot({ token: "t-backup", secret: SECRET });
		fake.inject("t-ops", "5xx", "busy", "reset", "lost-answer", "slow");
		const env = {
			ALERTS_TICK_MS: "100", ALERTS_TIMING: fast(0), DINGTALK_PAUSE_MS: "1500", DINGTALK_TIMEOUT_MS: "500",
			DINGTALK_ROBOTS: JSON.stringify([
				{ name: "ops", url: fake.url("t-ops"), secret: SECRET, fallback: "backup" },
				{ name: "backup", url: fake.url("t-backup"), secret: SECRET, severities: ["P1"] },
			]),
		};
		let p = await startTestPlatform(env, { dataDir });
		const ids = Array.from({ length: 30 }, (_, i) => `cab_f_${i}`);
		try {
			for (const id of ids.slice(0, 15)) await signal(p.node.broker, "DoorFault", doorAlert(id));
			await fake.until("a few delivered", () => fake.messages.length >= 3);
			// A restart with notifications queued, retrying and resting.
			await p.stop();
			p = await startTestPlatform(env, { dataDir });
			for (const id of ids.slice(15)) await signal(p.node.broker, "DoorFault", doorAlert(id));
			await fake.until("all 30 delivered", () => deliveredOncePerGroup(fake, ids), 40_000).catch(async err => {
				console.log(JSON.stringify(fake.requests.map(r => [r.token, r.at % 100000, r.msgUuid?.slice(0, 10), r.errcode])), fake.messages.length, ids.filter(id => fake.messages.filter(m => m.text.includes(`${id}:1`)).length !== 1));
				const svc = p.node.broker.getLocalService("alerts") as any;
				console.log(JSON.stringify((await svc.repos.notifications.find({})).map((n: any) => [n._id.slice(0, 10), n.robot, n.state, n.attempts, n.tried, n.nextAttemptAt - Date.now(), n.lastError])));
				console.log(JSON.stringify(await svc.repos.robots.find({})));
				throw err;
			});

			const codes = fake.requests.map(r => r.errcode);
			expect(codes).toEqual(expect.arrayContaining(["http 502", -1, "reset", 130101]));
			expect(fake.messagesOf("t-backup").length).toBeGreaterThan(0); // the fallback took over while ops rested
			// The answer that got lost: DingTalk had the message, the retry reused its msgUuid, and it shows once.
			const lost = fake.requests.find(r => r.errcode === "lost-answer")!;
			expect(fake.requests.filter(r => r.msgUuid === lost.msgUuid).length).toBeGreaterThanOrEqual(2);
			expect(fake.messagesOf("t-ops").filter(m => m.msgUuid === lost.msgUuid)).toHaveLength(1);
			// No alert shown twice in one group, and only that one, whose fate was unknown, in two groups.
			expect(deliveredOncePerGroup(fake, ids)).toBe(true);
			const twice = ids.filter(id => fake.messages.filter(m => m.text.includes(`${id}:1`)).length > 1);
			expect(twice.every(id => fake.messages.some(m => m.msgUuid === lost.msgUuid && m.text.includes(`${id}:1`)))).toBe(true);
			expect(fake.maxRequestsPerWindow("t-backup")).toBeLessThanOrEqual(20);
		} finally {
			await p.stop();
			await fake.stop();
			fs.rmSync(dataDir, { recursive: true, force: true });
		}
	});
});

describe("robots that cannot send", () => {
	it("sets aside a robot DingTalk refuses (310000 signature, 300001 token): no blind retries, its messages and an alert about it go through the fallback", async () => {
		const fake = await new FakeDingTalk().start();
		fake.addRobot({ token: "t-signed", secret: SECRET });
		fake.addRobot({ token: "t-backup", secret: SECRET });
		const p = await startTestPlatform({
			ALERTS_TICK_MS: "100", ALERTS_TIMING: fast(0), DINGTALK_PAUSE_MS: "600000",
			DINGTALK_ROBOTS: JSON.stringify([
				{ name: "wrong-secret", url: fake.url("t-signed"), secret: "SECnot-the-right-one", fallback: "backup", merchantId: "mer_a" },
				{ name: "gone", url: fake.url("t-deleted"), secret: SECRET, fallback: "backup", merchantId: "mer_b" },
				{ name: "backup", url: fake.url("t-backup"), secret: SECRET, severities: ["P1"] },
			]),
		});
		try {
			await signal(p.node.broker, "DoorFault", { ...doorAlert("cab_mer_a"), merchantId: "mer_a" });
			await signal(p.node.broker, "DoorFault", { ...doorAlert("cab_mer_b"), merchantId: "mer_b" });
			await fake.until("both through the fallback", () => deliveredOnce(fake, ["cab_mer_a", "cab_mer_b"]));
			const unusable = await fake.until("the robots' own alerts", () => {
				const m = fake.messagesOf("t-backup").filter(x => x.text.includes("DingTalkRobotUnusable"));
				return m.some(x => x.text.includes("robot=wrong-secret")) && m.some(x => x.text.includes("robot=gone")) && m;
			});
			expect(unusable.map(m => m.title)).toEqual(expect.arrayContaining([expect.stringMatching(/^\[P1\]/)]));
			expect(fake.messagesOf("t-backup").filter(m => m.text.includes("cab_mer_"))).toHaveLength(2);
			// One refused request each, then none: a refused configuration is not retried blindly.
			await p.node.broker.call("alerts.tickNow");
			await signal(p.node.broker, "DoorFault", { ...doorAlert("cab_mer_a2"), merchantId: "mer_a" });
			await fake.until("the next one through the fallback too", () => deliveredOnce(fake, ["cab_mer_a2"]));
			expect(fake.requests.filter(r => r.token === "t-signed").map(r => r.errcode)).toEqual([310000]);
			expect(fake.requests.filter(r => r.token === "t-deleted").map(r => r.errcode)).toEqual([300001]);
		} finally {
			await p.stop();
			await fake.stop();
		}
	});
});

describe("rules fed by the platform's events", () => {
	let p: TestPlatform;
	let token: string;
	const firing = async () => (await p.api("GET", "/api/v1/alerts?state=firing&pageSize=100", undefined, { token })).body.rows as any[];
	const alertNamed = (name: string, labels: Record<string, string> = {}) =>
		until(`${name} firing`, async () => (await firing()).find(a => a.name === name && Object.entries(labels).every(([k, v]) => a.labels[k] === v)));

	beforeAll(async () => {
		// No robot: alerts are kept and listed.
		p = await startTestPlatform({
			ALERTS_TICK_MS: "100", ALERT_CLEAR_FOR_MS: "100", ALERT_UNLOCK_WINDOW_MS: "1500", ALERT_UNLOCK_MIN_CABINET: "4", ALERT_BAD_SIGNATURE_BURST: "3",
			PAYMENT_QUERY_AFTER_MS: "1000", ALERT_PAYMENT_PENDING_MS: "1000", ALERT_ORDER_STUCK_MS: "1000", HEARTBEAT_SEC: "1",
		});
		token = (await p.api("POST", "/api/v1/auth/login", { login: ADMIN.username, password: ADMIN.password })).body.accessToken;
	});
	afterAll(() => p.stop());

	const door = { doorId: "cab_rules_1:2", cabinetId: "cab_rules_1", pointId: "pnt_rules_1", merchantId: "mer_rules_1", no: 2, size: "M", version: 1, at: Date.now() };

	it("door faults, forced doors, doors left open and unknown outcomes, with where they are", async () => {
		for (const [kind, name, severity] of [["jammed", "DoorFault", "P2"], ["tamper", "DoorForcedOpen", "P1"], ["door_left_open", "DoorLeftOpen", "P3"], ["command_unknown", "CommandOutcomeUnknown", "P3"]]) {
			p.node.broker.emit("doors.anomaly", { ...door, kind, detail: {} });
			expect(await alertNamed(name, { doorId: door.doorId })).toMatchObject({ severity, labels: { cabinetId: door.cabinetId, pointId: door.pointId, merchantId: door.merchantId, kind } });
		}
	});

	it("an unlock failure rate over its window, only once enough attempts were made, resolving when the window empties", async () => {
		const open = (ok: boolean) => p.node.broker.emit("doors.open.completed", { cabinetId: "cab_rates_1", pointId: "pnt_r", merchantId: "mer_r", doorId: "cab_rates_1:1", ok, error: ok ? null : "JAMMED", at: Date.now() });
		for (let i = 0; i < 3; i++) open(false);
		await p.node.broker.call("alerts.tickNow");
		expect((await firing()).some(a => a.name === "UnlockFailureRate")).toBe(false); // 3 attempts: below the minimum of 4
		open(true);
		expect(await alertNamed("UnlockFailureRate", { cabinetId: "cab_rates_1" })).toMatchObject({ severity: "P2" });
		await until("resolved once the window emptied", async () => !(await firing()).some(a => a.name === "UnlockFailureRate"), 6000);
	});

	it("payments: signature bursts, amount mismatches, pending too long, reconciliation mismatches, a paid door that will not open", async () => {
		const b = p.node.broker;
		for (let i = 0; i < 3; i++) b.emit("billing.notification.rejected", { provider: "sandbox", reason: "signature" });
		expect(await alertNamed("PaymentSignatureFailures")).toMatchObject({ severity: "P2" });
		b.emit("billing.payment.amountMismatch", { paymentId: "pay_mismatch1", orderId: "ord_1", expectedFen: 800, notifiedFen: 1, via: "notification" });
		expect(await alertNamed("PaymentAmountMismatch", { paymentId: "pay_mismatch1" })).toMatchObject({ severity: "P1" });
		b.emit("billing.payment.stale", { paymentId: "pay_stale01", orderId: "ord_2", ageMs: 20 * 60_000 });
		expect(await alertNamed("PaymentPendingTooLong", { paymentId: "pay_stale01" })).toMatchObject({ severity: "P3" });
		b.emit("billing.reconciliation.checked", { date: "2026-12-01", mismatches: 2 });
		expect(await alertNamed("ReconciliationMismatch", { date: "2026-12-01" })).toMatchObject({ severity: "P1" });
		b.emit("billing.reconciliation.checked", { date: "2026-12-01", mismatches: 0 });
		await until("reconciled", async () => !(await firing()).some(a => a.name === "ReconciliationMismatch"));
		b.emit("orders.refund.proposed", { orderId: "ord_refund1", paymentId: "pay_1", amountFen: 800, reason: "pickup door jammed", pointId: "pnt_9", merchantId: "mer_9", cabinetId: "cab_9", doorId: "cab_9:1" });
		expect(await alertNamed("PaidDoorWillNotOpen", { orderId: "ord_refund1" })).toMatchObject({ severity: "P1", labels: { pointId: "pnt_9", merchantId: "mer_9" } });
		b.emit("orders.order.stuck", { orderId: "ord_stuck01", status: "depositing", minutes: 45, pointId: "pnt_9", merchantId: "mer_9" });
		expect(await alertNamed("OrderStuck", { orderId: "ord_stuck01" })).toMatchObject({ severity: "P3" });
	});

	it("billing's sweeper reports a payment pending too long", async () => {
		const pay = await p.node.broker.call<any, any>("billing.createPayment", { orderId: "ord_stale_sweep1", userId: "usr_stale1", merchantId: "mer_stale1", pointId: "pnt_stale1", amountFen: 800, commissionRate: 0.1 });
		const found = await until("the sweeper's alert", async () => {
			await p.node.broker.call("billing.sweepPending");
			return (await firing()).find(a => a.name === "PaymentPendingTooLong" && a.labels.paymentId === pay.id);
		}, 10_000);
		expect(found.labels.orderId).toBe("ord_stale_sweep1");
	});

	it("an order left depositing past its limit is reported by the orders catch-up", async () => {
		const b = p.node.broker;
		const reg = await registerCabinet(b, [{ no: 1, size: "M" }]);
		const mqttUrl = (await b.call<{ url: string }, object>("hardware.endpoint", {})).url;
		// Nobody closes the door: the order stays depositing.
		const sim = new SimulatedCabinet({ cabinetId: reg.cabinetId, secret: reg.secret, doors: reg.doors, mqttUrl, heartbeatSec: 1 });
		await sim.start();
		try {
			await until("the cabinet online", async () => (await b.call<any, any>("doors.cabinet", { cabinetId: reg.cabinetId })).online);
			const phone = newPhone();
			const user = (await p.api("POST", "/api/v1/auth/register", { phone, password: "stuck-pass-123" })).body.accessToken;
			const order = (await p.api("POST", "/api/v1/orders", { pointId: reg.pointId, size: "M" }, { token: user })).body;
			expect((await p.api("POST", `/api/v1/orders/${order.id}/open`, undefined, { token: user })).body.status).toBe("depositing");
			const stuck = await until("the stuck order's alert", async () => {
				await b.call("orders.catchUp");
				return (await firing()).find(a => a.name === "OrderStuck" && a.labels.orderId === order.id);
			}, 10_000);
			expect(stuck.labels).toMatchObject({ status: "depositing", pointId: reg.pointId });
		} finally {
			await sim.stop();
		}
	});

	it("the reconciliation route tells the alerts what it found", async () => {
		const seen: any[] = [];
		p.node.broker.createService({ name: "reconciliation-listener", events: { "billing.reconciliation.checked"(ctx: any) { seen.push(ctx.params); } } });
		const r = await p.api("GET", "/api/v1/admin/reconciliation?date=2026-11-30", undefined, { token });
		expect(r.status).toBe(200);
		await until("the event", () => seen.find(e => e.date === "2026-11-30"));
		expect(seen.find(e => e.date === "2026-11-30")).toEqual({ date: "2026-11-30", mismatches: 0 });
	});

	it("a circuit breaker opening on a node (Moleculer's local event, forwarded to the mesh), resolved when it closes", async () => {
		const b = p.node.broker;
		b.broadcastLocal("$circuit-breaker.opened", { nodeID: "node-doors-2", service: "doors", action: "doors.open", failures: 5, count: 10, rate: 0.5 });
		expect(await alertNamed("CircuitBreakerOpen", { target: "node-doors-2" })).toMatchObject({ severity: "P2", labels: { node: b.nodeID, action: "doors.open" } });
		b.broadcastLocal("$circuit-breaker.closed", { nodeID: "node-doors-2", service: "doors", action: "doors.open" });
		await until("closed", async () => !(await firing()).some(a => a.name === "CircuitBreakerOpen"));
	});
});
