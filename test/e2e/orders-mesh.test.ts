/**
 * The order flow distributed, on the real NATS, Redis and Mosquitto of this
 * machine: gateway and catalog on one node, orders, billing, hardware and two
 * doors nodes each on their own, simulated cabinets on Mosquitto. People
 * store bags and pay through REST; every order ends completed, the ledger
 * balances and the day reconciles.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { SimulatedCabinet } from "../../tools/simulator/cabinet";
import { httpClient, newPhone, until, type Client } from "../support/platform";
import { freePort, spawnNode, waitForHttp, type NodeProcess } from "../support/processes";

jest.setTimeout(180_000);

const NATS = process.env.NATS_URL ?? "nats://127.0.0.1:4222";
const REDIS = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const MQTT = process.env.MQTT_URL ?? "mqtt://127.0.0.1:1883";
const ADMIN_PASSWORD = "orders-mesh-admin-1";

describe("orders, billing and doors on separate nodes", () => {
	const namespace = `e2e-orders-${process.pid}`;
	const dirs: string[] = [];
	const nodes: NodeProcess[] = [];
	const sims: SimulatedCabinet[] = [];
	let api: Client;
	/** The first test's point and merchant, reused by the second. */
	let pointId = "";
	let merchantId = "";
	const common = {
		TRANSPORTER: NATS, REDIS_URL: REDIS, MQTT_URL: MQTT, NAMESPACE: namespace, MQTT_SHARE_GROUP: `hw-${process.pid}`, ADMIN_PASSWORD,
		CABINET_SECRET_KEY: "e2e-orders-cabinet-secret-key-0123456789", HEARTBEAT_SEC: "2", DEMO_SEED: "false",
		RATE_LIMIT_IP: "1000000", RATE_LIMIT_USER: "1000000", RATE_LIMIT_AUTH: "1000000",
	};
	const dirOf = new Map<string, string>();
	const byName = new Map<string, NodeProcess>();
	/** A node of its own data directory (kept across restarts of the same name). */
	const node = (name: string, env: Record<string, string>) => {
		let dir = dirOf.get(name);
		if (!dir) {
			dir = fs.mkdtempSync(path.join(os.tmpdir(), `lockers-${name}-`));
			dirs.push(dir);
			dirOf.set(name, dir);
		}
		const n = spawnNode(name, { ...common, DATA_DIR: dir, ...env });
		nodes.push(n);
		byName.set(name, n);
		return n;
	};

	beforeAll(async () => {
		const port = await freePort();
		const gateway = node("api", { SERVICES: "api,users,merchants,geo", PORT: String(port) });
		for (const role of ["orders", "billing", "hardware", "doors"]) node(role, { SERVICES: role });
		node("doors-2", { SERVICES: "doors" });
		await waitForHttp(`http://127.0.0.1:${port}/api/v1/ready`, s => s === 200, 60_000, gateway);
		api = httpClient(`http://127.0.0.1:${port}`);
	});

	afterAll(async () => {
		await Promise.all(sims.map(s => s.stop().catch(() => undefined)));
		await Promise.all(nodes.map(n => n.stop()));
		for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
	});

	it("every order ends completed and paid, the ledger balances and the day reconciles", async () => {
		const admin = (await api("POST", "/api/v1/auth/login", { login: "admin", password: ADMIN_PASSWORD })).body.accessToken;
		const A = (m: string, p: string, b?: unknown) => api(m, p, b, { token: admin });
		const code = `M${String(process.pid % 100000).padStart(5, "0").replace(/\d/g, d => String.fromCharCode(65 + Number(d)))}`;
		expect((await A("POST", "/api/v1/cities", { code, name: "网格城", lat: 31, lng: 121 })).status).toBe(201);
		const merchant = (await A("POST", "/api/v1/merchants", { name: "网格商户", contactPhone: "+86 21 5555 0202", commissionRate: 0.2 })).body;
		const point = (await A("POST", "/api/v1/points", { merchantId: merchant.id, cityCode: code, name: "网格点", address: "网格路3号", lat: 31, lng: 121 })).body;
		pointId = point.id;
		merchantId = merchant.id;
		const doors = [1, 2, 3, 4].map(no => ({ no, size: "M" as const }));
		for (let i = 0; i < 3; i++) {
			const cab = (await A("POST", "/api/v1/cabinets", { pointId: point.id, doors })).body;
			const sim = new SimulatedCabinet({ cabinetId: cab.cabinet.id, secret: cab.credentials.password, doors, mqttUrl: MQTT, heartbeatSec: 2, autoCloseMs: 100 });
			sims.push(sim);
			await sim.start();
			await until(`cabinet ${i} online`, async () => (await A("GET", `/api/v1/cabinets/${cab.cabinet.id}`)).body.online === true, 20_000);
		}

		const people = await Promise.all(Array.from({ length: 8 }, async () => (await api("POST", "/api/v1/auth/register", { phone: newPhone(), password: "mesh-user-pass-1" })).body.accessToken as string));
		const lives = people.map(async token => {
			const U = (m: string, p: string, b?: unknown) => api(m, p, b, { token });
			const o = (await U("POST", "/api/v1/orders", { pointId: point.id, size: "M" })).body;
			expect(o.status).toBe("reserved");
			expect((await U("POST", `/api/v1/orders/${o.id}/open`)).status).toBe(200);
			await until("stored", async () => (await U("GET", `/api/v1/orders/${o.id}`)).body.status === "stored", 20_000);
			const pay = (await U("POST", `/api/v1/orders/${o.id}/checkout`)).body.payment;
			expect((await U("POST", `/api/v1/payments/${pay.id}/sandbox-pay`, {})).body.outcome).toBe("captured");
			await until("paid", async () => (await U("GET", `/api/v1/orders/${o.id}`)).body.status === "paid", 20_000);
			expect((await U("POST", `/api/v1/orders/${o.id}/open`)).status).toBe(200);
			await until("completed", async () => (await U("GET", `/api/v1/orders/${o.id}`)).body.status === "completed", 20_000);
			return pay.amountFen as number;
		});
		const paid = await Promise.all(lives);
		const total = paid.reduce((n, x) => n + x, 0);
		expect(total).toBe(8 * 800);

		await until("the ledger written", async () => (await A("GET", `/api/v1/merchants/${merchant.id}/ledger?pageSize=100`)).body.total === 8 * 3, 20_000);
		const rows = (await A("GET", `/api/v1/merchants/${merchant.id}/ledger?pageSize=100`)).body.rows;
		expect(rows.reduce((n: number, e: any) => n + e.debitFen, 0)).toBe(rows.reduce((n: number, e: any) => n + e.creditFen, 0));
		const day = new Date(Date.now() + 8 * 3600_000).toISOString().slice(0, 10);
		const statement = (await A("GET", `/api/v1/merchants/${merchant.id}/settlements?from=${day}&to=${day}`)).body.rows[0];
		expect(statement).toMatchObject({ grossFen: 6400, commissionFen: 1280, refundsFen: 0, netFen: 5120 });
		expect((await A("GET", `/api/v1/admin/reconciliation?date=${day}`)).body.mismatches).toEqual([]);
	});

	it("kill -9 of the billing node between 'captured' and 'ledger written': after its restart the ledger is complete and the order paid", async () => {
		const admin = (await api("POST", "/api/v1/auth/login", { login: "admin", password: ADMIN_PASSWORD })).body.accessToken;
		const A = (m: string, p: string, b?: unknown) => api(m, p, b, { token: admin });
		const point = pointId;
		expect(point).not.toBe("");
		// Billing again, this time dying right after it captured a payment.
		await byName.get("billing")!.stop();
		const dying = node("billing", { SERVICES: "billing", CRASH_POINTS: "billing.captured" });
		const token = (await api("POST", "/api/v1/auth/register", { phone: newPhone(), password: "mesh-user-pass-2" })).body.accessToken as string;
		const U = (m: string, p: string, b?: unknown) => api(m, p, b, { token });
		const o = (await U("POST", "/api/v1/orders", { pointId: point, size: "M" })).body;
		await U("POST", `/api/v1/orders/${o.id}/open`);
		await until("stored", async () => (await U("GET", `/api/v1/orders/${o.id}`)).body.status === "stored", 20_000);
		const pay = await until("billing back", async () => (await U("POST", `/api/v1/orders/${o.id}/checkout`)).body.payment, 30_000);
		const died = new Promise<void>(resolve => dying.proc.once("exit", () => resolve()));
		await U("POST", `/api/v1/payments/${pay.id}/sandbox-pay`, {}).catch(() => undefined);
		await died;
		expect(dying.proc.signalCode).toBe("SIGKILL");
		expect((await U("GET", `/api/v1/orders/${o.id}`)).body.status).toBe("paying");

		node("billing", { SERVICES: "billing" });
		await until("paid after billing's restart", async () => (await U("GET", `/api/v1/orders/${o.id}`)).body.status === "paid", 30_000);
		await until("the ledger written", async () => {
			const rows = (await A("GET", `/api/v1/merchants/${merchantId}/ledger?pageSize=100`)).body.rows?.filter((e: any) => e.paymentId === pay.id) ?? [];
			return rows.length === 3 ? rows : undefined;
		}, 20_000);
		const day = new Date(Date.now() + 8 * 3600_000).toISOString().slice(0, 10);
		await until("reconciled", async () => {
			const r = (await A("GET", `/api/v1/admin/reconciliation?date=${day}`)).body;
			return r.mismatches?.length === 0 && r.inFlight?.length === 0 && r.payments >= 9 ? r : undefined;
		}, 20_000);
	});
});
