/**
 * Orders under contention and while their neighbours are down (embedded, NeDB
 * files in a temporary DATA_DIR so a service can be stopped and started again
 * with its data):
 * - 100 people race for the last M door: one order, 99 × 409, the door held once;
 * - orders is down while a bag goes in: the door keeps the event until orders
 *   is back and acknowledges it, and the order ends `stored`;
 * - billing is down while notifications arrive: they are refused (503, so the
 *   provider retries) and captured once it is back; a payment whose
 *   notification never came is captured by the sweeper asking the provider.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { ServiceBroker } from "moleculer";
import { SimulatedCabinet } from "../../tools/simulator/cabinet";
import { sandboxSignature } from "../../services/billing/providers";
import { createOrdersService } from "../../services/orders.service";
import { createBillingService } from "../../services/billing.service";
import { newPhone, startTestPlatform, until, type TestPlatform } from "../support/platform";
import { registerCabinet } from "../support/catalog";

jest.setTimeout(90_000);

const SECRET = "resilience-sandbox-secret";
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "lockers-orders-"));
let p: TestPlatform;
let broker: ServiceBroker;
let mqttUrl: string;
const sims: SimulatedCabinet[] = [];

async function cabinetAt(doors: { no: number; size: "S" | "M" | "L" }[], autoCloseMs?: number) {
	const reg = await registerCabinet(broker, doors);
	const sim = new SimulatedCabinet({ cabinetId: reg.cabinetId, secret: reg.secret, doors: reg.doors, mqttUrl, heartbeatSec: 2, autoCloseMs });
	sims.push(sim);
	await sim.start();
	await until("the cabinet online", async () => (await broker.call<any, any>("doors.cabinet", { cabinetId: reg.cabinetId })).online);
	return { reg, sim };
}

const signUp = async () => (await broker.call<any, any>("users.register", { phone: newPhone(), password: "resilience-pass-1" })).accessToken as string;
const statusOf = async (id: string, token: string) => (await p.api("GET", `/api/v1/orders/${id}`, undefined, { token })).body.status;

beforeAll(async () => {
	p = await startTestPlatform({ HEARTBEAT_SEC: "2", SANDBOX_PAY_SECRET: SECRET, RATE_LIMIT_USER: "1000000", RATE_LIMIT_IP: "1000000", RATE_LIMIT_AUTH: "1000000", PAYMENT_QUERY_AFTER_MS: "1000", PAYMENT_SWEEP_MS: "500" }, { dataDir });
	broker = p.node.broker;
	mqttUrl = (await broker.call<{ url: string }, object>("hardware.endpoint", {})).url;
});
afterAll(async () => {
	await Promise.all(sims.map(s => s.stop().catch(() => undefined)));
	await p.stop();
	fs.rmSync(dataDir, { recursive: true, force: true });
});

it("100 people racing for the last M door: one order, 99 × 409, the door held by that one order", async () => {
	const { reg } = await cabinetAt([{ no: 1, size: "M" }, { no: 2, size: "S" }]);
	const tokens = await Promise.all(Array.from({ length: 100 }, signUp));
	const answers = await Promise.all(tokens.map(token => p.api("POST", "/api/v1/orders", { pointId: reg.pointId, size: "M" }, { token })));
	const won = answers.filter(a => a.status === 201);
	expect(won).toHaveLength(1);
	expect(answers.filter(a => a.status === 409).every(a => a.body.type === "NO_DOOR_AVAILABLE")).toBe(true);
	expect(answers.filter(a => a.status === 409)).toHaveLength(99);
	const door = await broker.call<any, any>("doors.get", { doorId: won[0].body.doorId });
	expect(door).toMatchObject({ state: "reserved", orderId: won[0].body.id });
	const held = await broker.call<any, any>("orders.list", { pageSize: 100, status: "reserved" }, { meta: { user: { id: "adm", roles: ["admin"], sid: "s" } } });
	expect(held.rows.filter((o: any) => o.doorId === won[0].body.doorId)).toHaveLength(1);
});

it("orders down while the bag goes in: the door keeps the news until orders is back, and the order ends stored", async () => {
	const { reg, sim } = await cabinetAt([{ no: 1, size: "L" }]);
	const token = await signUp();
	const order = (await p.api("POST", "/api/v1/orders", { pointId: reg.pointId, size: "L" }, { token })).body;
	expect((await p.api("POST", `/api/v1/orders/${order.id}/open`, undefined, { token })).body.status).toBe("depositing");

	await broker.destroyService(broker.getLocalService("orders")!);
	sim.close(1, true); // the bag goes in while orders is away
	await until("the door occupied", async () => (await broker.call<any, any>("doors.get", { doorId: order.doorId })).state === "occupied");

	broker.createService(createOrdersService(p.config, { dataDir }));
	await broker.waitForServices(["orders"]);
	await until("the order stored", async () => (await statusOf(order.id, token)) === "stored", 15_000);
});

it("billing down while notifications arrive: refused with 503, captured once billing is back; a lost notification is found by the sweeper", async () => {
	const { reg } = await cabinetAt([{ no: 1, size: "M" }, { no: 2, size: "M" }], 100);
	const token = await signUp();
	const stored = async () => {
		const o = (await p.api("POST", "/api/v1/orders", { pointId: reg.pointId, size: "M" }, { token })).body;
		await p.api("POST", `/api/v1/orders/${o.id}/open`, undefined, { token });
		await until("stored", async () => (await statusOf(o.id, token)) === "stored");
		const pay = (await p.api("POST", `/api/v1/orders/${o.id}/checkout`, undefined, { token })).body.payment;
		return { o, pay };
	};
	const a = await stored();
	const b = await stored();
	// b's person pays, but its notification never comes.
	expect((await p.api("POST", `/api/v1/payments/${b.pay.id}/sandbox-pay`, { notify: false }, { token })).status).toBe(200);

	await broker.destroyService(broker.getLocalService("billing")!);
	const raw = JSON.stringify({ paymentId: a.pay.id, providerTxnId: "sbx_down", amountFen: a.pay.amountFen, status: "success" });
	const notify = () => p.api("POST", "/api/v1/payments/notify/sandbox", undefined, { raw, headers: { "content-type": "application/json", "x-sandbox-signature": sandboxSignature(SECRET, raw) } });
	expect(await notify()).toMatchObject({ status: 503, body: { type: "SERVICE_UNAVAILABLE" } });
	expect(await statusOf(a.o.id, token)).toBe("paying");

	broker.createService(createBillingService(p.config, { dataDir }));
	await broker.waitForServices(["billing"]);
	expect(await notify()).toMatchObject({ status: 200, body: { outcome: "captured" } }); // the provider's retry
	await until("a paid", async () => (await statusOf(a.o.id, token)) === "paid");
	await until("b paid by the sweeper", async () => (await statusOf(b.o.id, token)) === "paid", 20_000);
});
