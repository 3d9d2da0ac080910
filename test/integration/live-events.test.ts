/**
 * GET /api/v1/events on the embedded platform, over real HTTP with simulated
 * cabinets: each role sees its own part of the platform's changes and nothing
 * else; bad requests are refused before a stream starts; a slow reader is
 * closed with its queue bounded; a hang-up or a sign-out leaves nothing behind.
 */
import type { ServiceBroker } from "moleculer";
import { SimulatedCabinet } from "../../tools/simulator/cabinet";
import type { LiveStreams, ClosedStream } from "../../services/api/live-stream";
import { LIVE_SERVICE } from "../../services/api/live-stream";
import { ADMIN, newPhone, startTestPlatform, type TestPlatform } from "../support/platform";
import { registerCabinet, type RegisteredCabinet } from "../support/catalog";
import { openSse, type SseEvent, type SseStream } from "../support/sse";
import { until } from "../support/platform";

jest.setTimeout(60_000);

const QUEUE_EVENTS = 16;
const QUEUE_BYTES = 8 * 1024;

let p: TestPlatform;
let broker: ServiceBroker;
let live: LiveStreams;
let admin: string;
const cabs: { reg: RegisteredCabinet; sim: SimulatedCabinet; merchantId: string }[] = [];
const open: SseStream[] = [];

async function user(): Promise<string> {
	const r = await p.api("POST", "/api/v1/auth/register", { phone: newPhone(), password: "live-pass-1234" });
	return r.body.accessToken;
}

let staffSeq = 0;
async function staff(roles: string[], merchantId?: string): Promise<string> {
	const username = `live${process.pid % 10000}s${++staffSeq}`;
	const made = await p.api("POST", "/api/v1/admin/users", { username, password: "live-staff-pass-1", roles, merchantId }, { token: admin });
	expect(made.status).toBe(201);
	return (await p.api("POST", "/api/v1/auth/login", { login: username, password: "live-staff-pass-1" })).body.accessToken;
}

async function stream(path: string, token?: string): Promise<SseStream> {
	const s = await openSse(p.url, path, token);
	open.push(s);
	return s;
}

/** A stream that said `ready`. */
async function ready(token: string, query = ""): Promise<SseStream> {
	const s = await stream(`/api/v1/events${query}`, token);
	expect(s.status).toBe(200);
	expect(s.headers["content-type"]).toMatch(/^text\/event-stream/);
	await s.waitFor("ready", e => e.event === "ready");
	return s;
}

/** The next stream of the node to close, with why. */
const nextClosed = () => new Promise<ClosedStream>(resolve => live.once("closed", resolve));

const ofType = (s: SseStream, type: string) => s.events.filter(e => e.event === type);

beforeAll(async () => {
	p = await startTestPlatform({
		HEARTBEAT_SEC: "2", RATE_LIMIT_USER: "100000", RATE_LIMIT_IP: "100000", RATE_LIMIT_AUTH: "100000",
		LIVE_QUEUE_EVENTS: String(QUEUE_EVENTS), LIVE_QUEUE_BYTES: String(QUEUE_BYTES), LIVE_MAX_STREAMS_PER_USER: "2", LIVE_LINGER_MS: "0",
		ALERT_CLEAR_FOR_MS: "0", ALERTS_TICK_MS: "100",
	});
	broker = p.node.broker;
	live = (broker.getLocalService("api") as unknown as { live: LiveStreams }).live;
	admin = (await p.api("POST", "/api/v1/auth/login", { login: ADMIN.username, password: ADMIN.password })).body.accessToken;
	const url = (await broker.call<{ url: string }, object>("hardware.endpoint", {})).url;
	for (let i = 0; i < 2; i++) {
		// Enough doors for every order of the file (none is given back).
		const reg = await registerCabinet(broker, Array.from({ length: 12 }, (_, n) => ({ no: n + 1, size: "M" as const })));
		const sim = new SimulatedCabinet({ cabinetId: reg.cabinetId, secret: reg.secret, doors: reg.doors, mqttUrl: url, heartbeatSec: 2, autoCloseMs: 150 });
		await sim.start();
		await until("the cabinet online", async () => (await broker.call<any, any>("doors.cabinet", { cabinetId: reg.cabinetId })).online);
		const { merchantId } = await broker.call<{ merchantId: string }, object>("merchants.pointForOrder", { pointId: reg.pointId });
		cabs.push({ reg, sim, merchantId });
	}
});

afterEach(async () => {
	// Each test leaves the node without streams (and so without its door subscription).
	for (const s of open.splice(0)) s.close();
	await until("every stream closed", () => live.size === 0 && live.hub.size === 0);
});

afterAll(async () => {
	for (const c of cabs) await c.sim.stop();
	await p.stop();
});

describe("refused before the stream starts", () => {
	it("answers 401 in API.md's shape without a token, or with a bad one", async () => {
		const none = await stream("/api/v1/events");
		await none.ended;
		expect(none.status).toBe(401);
		expect(JSON.parse(none.text)).toMatchObject({ code: 401, type: "UNAUTHORIZED" });
		const bad = await stream("/api/v1/events", "not-a-token");
		await bad.ended;
		expect([bad.status, JSON.parse(bad.text).type]).toEqual([401, "INVALID_TOKEN"]);
		// The token in the URL is not a token.
		const inUrl = await stream(`/api/v1/events?access_token=${await user()}`);
		await inUrl.ended;
		expect(inUrl.status).toBe(401);
	});

	it("answers 422 for bad filters (every problem at once) and 403 for a topic the role may not see", async () => {
		const token = await user();
		const bad = await stream("/api/v1/events?topics=door,weather&pointId=nope&extra=1", token);
		await bad.ended;
		expect(bad.status).toBe(422);
		const body = JSON.parse(bad.text);
		expect(body).toMatchObject({ code: 422, type: "VALIDATION_ERROR" });
		expect(body.data.map((f: { field: string }) => f.field).sort()).toEqual(["extra", "pointId", "topics"]);
		const repeated = await stream("/api/v1/events?topics=door&topics=order", token);
		await repeated.ended;
		expect(repeated.status).toBe(422);
		const alerts = await stream("/api/v1/events?topics=alert", token);
		await alerts.ended;
		expect([alerts.status, JSON.parse(alerts.text).type]).toEqual([403, "FORBIDDEN"]);
		expect(live.size).toBe(0);
	});

	it("caps the streams of one account, with an SSE error event", async () => {
		const token = await user();
		await ready(token);
		await ready(token);
		const third = await stream("/api/v1/events", token);
		await third.ended;
		expect(third.status).toBe(429);
		expect(third.events).toEqual([{ event: "error", data: expect.objectContaining({ code: 429, type: "TOO_MANY_STREAMS", data: { limit: 2 } }) }]);
		expect(live.size).toBe(2);
	});
});

describe("scoped by role", () => {
	it("shows a user its own order and door as they change, and nothing of another user's", async () => {
		const [alice, bob] = [await user(), await user()];
		const s = await ready(alice);
		expect(s.events[0]).toEqual({ event: "ready", data: { role: "user", topics: ["door", "order"] } });
		const pointId = cabs[0].reg.pointId;

		const theirs = (await p.api("POST", "/api/v1/orders", { pointId, size: "M" }, { token: bob })).body;
		const mine = (await p.api("POST", "/api/v1/orders", { pointId, size: "M" }, { token: alice })).body;
		expect(await s.waitFor("reserved", e => e.event === "order" && e.data.id === mine.id)).toEqual({
			event: "order", data: { id: mine.id, status: "reserved", pointId, doorId: mine.doorId, at: expect.any(Number) },
		});
		// The cabinet opens, the person puts the bag in, the door closes on it.
		expect((await p.api("POST", `/api/v1/orders/${mine.id}/open`, undefined, { token: alice })).status).toBe(200);
		await s.waitFor("stored", e => e.event === "order" && e.data.status === "stored");
		await s.waitFor("its door closed on the bag", e => e.event === "door" && e.data.occupied && !e.data.open);
		// Bob opens his door too: Alice is not told.
		expect((await p.api("POST", `/api/v1/orders/${theirs.id}/open`, undefined, { token: bob })).status).toBe(200);
		await p.api("POST", `/api/v1/orders/${mine.id}/checkout`, undefined, { token: alice });
		await s.waitFor("paying", e => e.event === "order" && e.data.status === "paying");

		// depositing may be skipped: the door's news can overtake the answer to the open.
		expect(ofType(s, "order").map(e => e.data.status).filter(x => x !== "depositing")).toEqual(["reserved", "stored", "paying"]);
		expect(ofType(s, "order").every(e => e.data.id === mine.id)).toBe(true);
		expect(ofType(s, "door").length).toBeGreaterThan(0);
		expect(ofType(s, "door").every(e => e.data.doorId === mine.doorId && e.data.orderId === mine.id)).toBe(true);
		expect(ofType(s, "door")[0].data).toEqual({
			doorId: mine.doorId, cabinetId: cabs[0].reg.cabinetId, pointId, merchantId: cabs[0].merchantId, no: mine.doorNo, size: "M",
			state: expect.any(String), open: expect.any(Boolean), occupied: expect.any(Boolean), orderId: mine.id, version: expect.any(Number), at: expect.any(Number),
		});
	});

	it("follows the doors of the orders a user had before the stream started", async () => {
		const token = await user();
		const o = (await p.api("POST", "/api/v1/orders", { pointId: cabs[0].reg.pointId, size: "M" }, { token })).body;
		const s = await ready(token, "?topics=door");
		expect(live.hub.followedDoors).toBe(1);
		await p.api("POST", `/api/v1/orders/${o.id}/open`, undefined, { token });
		await s.waitFor("its door", e => e.event === "door" && e.data.doorId === o.doorId && e.data.occupied);
		expect(ofType(s, "order")).toEqual([]); // not asked for
	});

	it("shows a merchant its own points only", async () => {
		const [mine, other] = cabs;
		const s = await ready(await staff(["merchant"], mine.merchantId));
		expect(s.events[0].data).toEqual({ role: "merchant", topics: ["door", "cabinet", "order"] });
		const token = await user();
		const elsewhere = (await p.api("POST", "/api/v1/orders", { pointId: other.reg.pointId, size: "M" }, { token })).body;
		const here = (await p.api("POST", "/api/v1/orders", { pointId: mine.reg.pointId, size: "M" }, { token })).body;
		await s.waitFor("the door reserved here", e => e.event === "door" && e.data.doorId === here.doorId && e.data.state === "reserved");
		await s.waitFor("the order here", e => e.event === "order" && e.data.id === here.id);
		expect(s.events.filter(e => e.event !== "ready").every(e => e.data.merchantId === mine.merchantId || e.data.pointId === mine.reg.pointId)).toBe(true);
		expect(s.events.some(e => JSON.stringify(e.data).includes(elsewhere.id) || JSON.stringify(e.data).includes(other.reg.cabinetId))).toBe(false);
		// A merchant's order events say nothing of who ordered.
		expect(ofType(s, "order")[0].data).not.toHaveProperty("userId");
	});

	it("shows an operator door and cabinet events of the whole fleet, and alerts; a merchant not another's cabinets", async () => {
		const op = await ready(await staff(["operator"]), "?topics=cabinet,alert,door");
		const merchant = await ready(await staff(["merchant"], cabs[0].merchantId), "?topics=cabinet");
		const c = cabs[1];
		c.sim.crash();
		expect((await op.waitFor("offline", e => e.event === "cabinet" && e.data.cabinetId === c.reg.cabinetId && !e.data.online)).data).toEqual({
			cabinetId: c.reg.cabinetId, pointId: c.reg.pointId, merchantId: c.merchantId, online: false, reason: expect.any(String), at: expect.any(Number),
		});
		const fired = await op.waitFor("alert fired", e => e.event === "alert" && e.data.name === "CabinetOffline" && e.data.labels.cabinetId === c.reg.cabinetId);
		expect(fired.data).toMatchObject({ state: "firing", severity: "P2", startsAt: expect.any(String) });
		await c.sim.start();
		await op.waitFor("online", e => e.event === "cabinet" && e.data.cabinetId === c.reg.cabinetId && e.data.online);
		await op.waitFor("alert resolved", e => e.event === "alert" && e.data.id === fired.data.id && e.data.state === "resolved" && !!e.data.endsAt);
		const o = (await p.api("POST", "/api/v1/orders", { pointId: cabs[0].reg.pointId, size: "M" }, { token: await user() })).body;
		await op.waitFor("a door", e => e.event === "door" && e.data.doorId === o.doorId);
		expect(merchant.events.filter((e: SseEvent) => e.event === "cabinet")).toEqual([]);
	});

	it("narrows by cabinetId", async () => {
		const s = await ready(await staff(["operator"]), `?topics=door&cabinetId=${cabs[1].reg.cabinetId}`);
		const token = await user();
		await p.api("POST", "/api/v1/orders", { pointId: cabs[0].reg.pointId, size: "M" }, { token });
		const o = (await p.api("POST", "/api/v1/orders", { pointId: cabs[1].reg.pointId, size: "M" }, { token })).body;
		await s.waitFor("the door there", e => e.event === "door" && e.data.doorId === o.doorId);
		expect(ofType(s, "door").every(e => e.data.cabinetId === cabs[1].reg.cabinetId)).toBe(true);
	});
});

describe("bounded and cleaned up", () => {
	it("closes a reader that stops reading with `overflow`, its queue never above the cap", async () => {
		const s = await ready(await staff(["operator"]), "?topics=door");
		s.res.pause(); // stops reading: the socket's buffers fill, then the server's queue
		const closed = nextClosed();
		let reason: string | null = null;
		void closed.then(c => (reason = c.reason));
		// Door events at full speed, each about 1 KB on the wire, until the server gives up on the reader.
		const big = "x".repeat(900);
		let sent = 0;
		while (!reason && sent < 200_000) {
			for (let i = 0; i < 200; i++, sent++) {
				void broker.broadcast("doors.state.changed", {
					doorId: `cab_slow:${sent}`, cabinetId: `cab_slow${big}`, pointId: "pt_slowreader", merchantId: "mer_slowreader", no: 1, size: "M",
					state: "available", orderId: null, open: false, occupied: false, version: sent, at: Date.now(),
				});
			}
			await new Promise(r => setImmediate(r));
		}
		const c = await closed;
		expect(c.reason).toBe("overflow");
		expect(c.peak.events).toBeLessThanOrEqual(QUEUE_EVENTS);
		expect(c.peak.bytes).toBeLessThanOrEqual(QUEUE_BYTES);
		expect(c.peak.events).toBeGreaterThan(0); // it did queue: the cap, not luck, bounded it
		expect(live.size).toBe(0);
		expect(live.hub.size).toBe(0);
	});

	it("forgets a client that hangs up, and stops receiving door events with no stream left", async () => {
		const token = await user();
		await p.api("POST", "/api/v1/orders", { pointId: cabs[0].reg.pointId, size: "M" }, { token });
		const s = await ready(token);
		expect(broker.getLocalService(LIVE_SERVICE)).toBeTruthy();
		expect([live.size, live.hub.size, live.hub.followedDoors]).toEqual([1, 1, 1]);
		const gone = new Promise(r => live.once("unsubscribed", r));
		const closed = nextClosed();
		s.close();
		expect((await closed).reason).toBe("client");
		expect([live.size, live.hub.size, live.hub.followedDoors]).toEqual([0, 0, 0]);
		await gone;
		expect(broker.getLocalService(LIVE_SERVICE)).toBeFalsy();
		expect(broker.registry.events.getAllEndpoints("doors.state.changed").some((ep: any) => ep.id === broker.nodeID && ep.service?.name === LIVE_SERVICE)).toBe(false);
	});

	it("ends the streams of a session that signs out", async () => {
		const token = await user();
		const s = await ready(token);
		const other = await ready(await user());
		expect((await p.api("POST", "/api/v1/auth/logout", undefined, { token })).status).toBe(204);
		await s.ended;
		expect(s.events.at(-1)).toEqual({ event: "error", data: expect.objectContaining({ code: 401, type: "SESSION_REVOKED" }) });
		expect(live.size).toBe(1);
		expect(other.res.destroyed).toBe(false);
		// And the token no longer opens one.
		const again = await stream("/api/v1/events", token);
		await again.ended;
		expect([again.status, JSON.parse(again.text).type]).toEqual([401, "SESSION_REVOKED"]);
	});
});
