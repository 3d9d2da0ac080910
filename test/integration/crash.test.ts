/**
 * kill -9 between two writes that must not lose or double anything, on the
 * embedded platform as `npm start` runs it (a child process, NeDB files):
 * - between "the door reported closed on the bag" and "the order stored";
 * - between "the payment captured" and "the ledger written".
 * After each restart on the same data the order is in the right state, the
 * ledger is complete and balanced, and nothing is counted twice.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { SimulatedCabinet } from "../../tools/simulator/cabinet";
import { httpClient, newPhone, until, type Client } from "../support/platform";
import { freePort, spawnNode, waitForHttp, type NodeProcess } from "../support/processes";

jest.setTimeout(180_000);

const ADMIN_PASSWORD = "crash-admin-pass-1";
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "lockers-crash-"));
let node: NodeProcess | undefined;
let api: Client;
let sim: SimulatedCabinet | undefined;
let port: number;
let mqttPort: number;

async function start(crashPoints = "") {
	node = spawnNode("embedded", {
		PORT: String(port), MQTT_PORT: String(mqttPort), DATA_DIR: dataDir, ADMIN_PASSWORD, DEMO_SEED: "false", HEARTBEAT_SEC: "2",
		RATE_LIMIT_IP: "100000", RATE_LIMIT_AUTH: "100000", RATE_LIMIT_USER: "100000", ...(crashPoints ? { CRASH_POINTS: crashPoints } : {}),
	});
	await waitForHttp(`http://127.0.0.1:${port}/api/v1/ready`, s => s === 200, 40_000, node);
	api = httpClient(`http://127.0.0.1:${port}`);
}

/** Resolves when the node died by its crash point (SIGKILL). */
function crashed(n: NodeProcess): Promise<void> {
	return new Promise(resolve => (n.proc.exitCode !== null || n.proc.signalCode !== null ? resolve() : n.proc.once("exit", () => resolve())));
}

beforeAll(async () => {
	port = await freePort();
	mqttPort = await freePort();
});
afterAll(async () => {
	await sim?.stop().catch(() => undefined);
	await node?.kill9();
	fs.rmSync(dataDir, { recursive: true, force: true });
});

it("loses and doubles nothing across two crashes in the middle of an order", async () => {
	await start("orders.deposited");
	const admin = (await api("POST", "/api/v1/auth/login", { login: "admin", password: ADMIN_PASSWORD })).body.accessToken;
	const as = (token: string) => (m: string, p: string, b?: unknown) => api(m, p, b, { token });
	const A = as(admin);
	expect((await A("POST", "/api/v1/cities", { code: "CR", name: "崩溃城", lat: 30, lng: 120 })).status).toBe(201);
	const merchant = (await A("POST", "/api/v1/merchants", { name: "崩溃商户", contactPhone: "+86 21 5555 0101", commissionRate: 0.15 })).body;
	const point = (await A("POST", "/api/v1/points", { merchantId: merchant.id, cityCode: "CR", name: "崩溃点", address: "测试路2号", lat: 30, lng: 120 })).body;
	const cab = (await A("POST", "/api/v1/cabinets", { pointId: point.id, doors: [{ no: 1, size: "M" }] })).body;
	sim = new SimulatedCabinet({
		cabinetId: cab.cabinet.id, secret: cab.credentials.password, doors: [{ no: 1, size: "M" }], mqttUrl: `mqtt://127.0.0.1:${mqttPort}`, heartbeatSec: 2, autoCloseMs: 100,
	});
	await sim.start();
	sim.on("error", () => undefined); // connection refused while the platform is down: it reconnects
	await until("the cabinet online", async () => (await A("GET", `/api/v1/cabinets/${cab.cabinet.id}`)).body.online === true, 15_000);

	const token = (await api("POST", "/api/v1/auth/register", { phone: newPhone(), password: "crash-user-pass-1" })).body.accessToken;
	const U = as(token);
	const order = (await U("POST", "/api/v1/orders", { pointId: point.id, size: "M" })).body;
	// The door opens, closes on the bag 100 ms later, and orders dies applying it.
	const died = crashed(node!);
	await U("POST", `/api/v1/orders/${order.id}/open`).catch(() => undefined);
	await died;

	await start("billing.captured");
	await until("the order stored after the restart", async () => (await U("GET", `/api/v1/orders/${order.id}`)).body.status === "stored", 20_000);
	const pay = (await U("POST", `/api/v1/orders/${order.id}/checkout`)).body.payment;
	expect(pay).toMatchObject({ status: "pending", amountFen: 800 });
	const died2 = crashed(node!);
	await U("POST", `/api/v1/payments/${pay.id}/sandbox-pay`, {}).catch(() => undefined); // captured, then killed
	await died2;

	await start();
	await until("the order paid after the restart", async () => (await U("GET", `/api/v1/orders/${order.id}`)).body.status === "paid", 20_000);
	const ledger = (await A("GET", `/api/v1/merchants/${merchant.id}/ledger?pageSize=100`)).body.rows;
	expect(ledger.map((e: any) => [e.account.split(":")[0], e.debitFen, e.creditFen]).sort()).toEqual([
		["merchant_payable", 0, 680], ["platform_revenue", 0, 120], ["provider_clearing", 800, 0],
	]);
	const day = new Date(Date.now() + 8 * 3600_000).toISOString().slice(0, 10);
	expect((await A("GET", `/api/v1/admin/reconciliation?date=${day}`)).body).toMatchObject({ payments: 1, capturedFen: 800, mismatches: [] });

	// And the bag comes out.
	expect((await U("POST", `/api/v1/orders/${order.id}/open`)).status).toBe(200);
	await until("completed", async () => (await U("GET", `/api/v1/orders/${order.id}`)).body.status === "completed", 10_000);
	expect((await A("GET", `/api/v1/merchants/${merchant.id}/ledger?pageSize=100`)).body.total).toBe(3);
});
