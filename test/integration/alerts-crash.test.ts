/**
 * kill -9 in the middle of sending alerts, on the embedded platform as
 * `npm start` runs it (a child process, NeDB files), against the fake
 * DingTalk robot:
 * - between "notifications merged into a digest" and "the digest written";
 * - between "DingTalk took the digest" and "marked sent".
 * After the restarts the digest reaches the group once: the same msgUuid is
 * sent again, which DingTalk shows once, and nothing else repeats it.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { SimulatedCabinet } from "../../tools/simulator/cabinet";
import { FakeDingTalk } from "../support/fake-dingtalk";
import { httpClient, until, type Client } from "../support/platform";
import { freePort, spawnNode, waitForHttp, type NodeProcess } from "../support/processes";

jest.setTimeout(180_000);

const ADMIN_PASSWORD = "alerts-crash-admin-1";
const SECRET = "SECcrash0123456789abcdef0123456789abcdef0123456789abcdef012345";
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "lockers-alerts-crash-"));
const fake = new FakeDingTalk({ windowMs: 3000 });
let node: NodeProcess | undefined;
let api: Client;
let port: number;
let mqttPort: number;
const sims: SimulatedCabinet[] = [];

async function start(crashPoints = "") {
	node = spawnNode("embedded", {
		PORT: String(port), MQTT_PORT: String(mqttPort), DATA_DIR: dataDir, ADMIN_PASSWORD, DEMO_SEED: "false", HEARTBEAT_SEC: "2",
		// Ticks far apart, so two cabinets going down together are seen in one round; one request per 3 s,
		// so two notifications due at once become a digest.
		ALERTS_TICK_MS: "2000", ALERT_CLEAR_FOR_MS: "500", DINGTALK_RATE_PER_WINDOW: "1", DINGTALK_RATE_WINDOW_MS: "3000",
		ALERTS_TIMING: JSON.stringify({ P1: { groupWaitMs: 0, groupIntervalMs: 500 }, P2: { groupWaitMs: 0, groupIntervalMs: 500 } }),
		DINGTALK_ROBOTS: JSON.stringify([{ name: "ops", url: fake.url("t-ops"), secret: SECRET }]),
		...(crashPoints ? { CRASH_POINTS: crashPoints } : {}),
	});
	await waitForHttp(`http://127.0.0.1:${port}/api/v1/ready`, s => s === 200, 40_000, node);
	api = httpClient(`http://127.0.0.1:${port}`);
}

function exited(n: NodeProcess): Promise<void> {
	return new Promise(resolve => (n.proc.exitCode !== null || n.proc.signalCode !== null ? resolve() : n.proc.once("exit", () => resolve())));
}

beforeAll(async () => {
	await fake.start();
	fake.addRobot({ token: "t-ops", secret: SECRET });
	port = await freePort();
	mqttPort = await freePort();
});
afterAll(async () => {
	await Promise.all(sims.map(s => s.stop().catch(() => undefined)));
	await node?.kill9();
	await fake.stop();
	fs.rmSync(dataDir, { recursive: true, force: true });
});

it("sends a digest once across a crash before it was written and a crash after DingTalk took it", async () => {
	await start("alerts.merged");
	const admin = (await api("POST", "/api/v1/auth/login", { login: "admin", password: ADMIN_PASSWORD })).body.accessToken;
	const A = (m: string, p: string, b?: unknown) => api(m, p, b, { token: admin });
	expect((await A("POST", "/api/v1/cities", { code: "AC", name: "告警城", lat: 31, lng: 121 })).status).toBe(201);
	const merchant = (await A("POST", "/api/v1/merchants", { name: "告警商户", contactPhone: "+86 21 5555 0102", commissionRate: 0.1 })).body;
	const points: string[] = [];
	for (const i of [1, 2]) {
		const point = (await A("POST", "/api/v1/points", { merchantId: merchant.id, cityCode: "AC", name: `告警点${i}`, address: "测试路3号", lat: 31, lng: 121 + i / 100 })).body;
		const cab = (await A("POST", "/api/v1/cabinets", { pointId: point.id, doors: [{ no: 1, size: "M" }] })).body;
		const sim = new SimulatedCabinet({ cabinetId: cab.cabinet.id, secret: cab.credentials.password, doors: [{ no: 1, size: "M" }], mqttUrl: `mqtt://127.0.0.1:${mqttPort}`, heartbeatSec: 2 });
		sim.on("error", () => undefined);
		await sim.start();
		sims.push(sim);
		points.push(point.id);
		await until("the cabinet online", async () => (await A("GET", `/api/v1/cabinets/${cab.cabinet.id}`)).body.online === true, 15_000);
	}

	// Both points lose their only cabinet: two P1 alerts due at once, one request left → a digest; killed after merging.
	let died = exited(node!);
	for (const s of sims) s.crash();
	await died;
	expect(fake.requests).toHaveLength(0);

	// The start makes the digest whole again and sends it; DingTalk takes it; killed before it is marked sent.
	await start("alerts.sent");
	died = exited(node!);
	await died;
	expect(fake.messages).toHaveLength(1);
	const digest = fake.messages[0];
	expect(points.every(id => digest.text.includes(id))).toBe(true);
	expect(digest.title).toBe("[P1] 2 告警 firing, 0 恢复 resolved");

	// Sent again under the same msgUuid after the restart (DingTalk shows it once), and never again after that.
	await start();
	await fake.until("the digest sent again", () => fake.requests.filter(r => r.msgUuid === digest.msgUuid).length === 2, 20_000);
	await Promise.all(sims.map(s => s.start()));
	await fake.until("both points resolved", () => points.every(id => fake.messages.some(m => m.text.includes("RESOLVED") && m.text.includes(id))), 30_000);
	expect(fake.requests.filter(r => r.msgUuid === digest.msgUuid)).toHaveLength(2);
	expect(fake.messages.filter(m => m.text.includes("FIRING"))).toEqual([digest]);
	expect(fake.rateViolations).toBe(0);
});
