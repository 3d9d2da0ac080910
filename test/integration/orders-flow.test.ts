/**
 * A person stores a bag and pays, on the embedded platform with a simulated
 * cabinet over real MQTT: reserve → open → deposit → checkout → sandbox
 * notification → open → pickup, and the money lands in the ledger, the
 * merchant's statement and the reconciliation. Then the rules around it:
 * 409s for transitions the state does not allow, cancel, idempotency keys,
 * forged and repeated notifications, wrong amounts, refunds.
 */
import type { ServiceBroker } from "moleculer";
import { SimulatedCabinet } from "../../tools/simulator/cabinet";
import { sandboxSignature } from "../../services/billing/providers";
import { ADMIN, newPhone, startTestPlatform, until, type TestPlatform } from "../support/platform";
import { registerCabinet, type RegisteredCabinet } from "../support/catalog";

jest.setTimeout(60_000);

let p: TestPlatform;
let broker: ServiceBroker;
let cab: RegisteredCabinet;
let sim: SimulatedCabinet;
let admin: string;
const SECRET = "orders-flow-sandbox-secret";

async function user() {
	const r = await p.api("POST", "/api/v1/auth/register", { phone: newPhone(), password: "orders-pass-123" });
	return r.body.accessToken as string;
}

const order = (id: string, token: string) => p.api("GET", `/api/v1/orders/${id}`, undefined, { token });
const statusOf = async (id: string, token: string) => (await order(id, token)).body.status as string;

/** An M order with its bag in and checkout done: the order and its pending payment. */
async function checkedOut(token: string) {
	const o = (await p.api("POST", "/api/v1/orders", { pointId: cab.pointId, size: "M" }, { token })).body;
	await p.api("POST", `/api/v1/orders/${o.id}/open`, undefined, { token });
	await until("stored", async () => (await statusOf(o.id, token)) === "stored");
	const pay = (await p.api("POST", `/api/v1/orders/${o.id}/checkout`, undefined, { token })).body.payment;
	return { o, pay };
}

beforeAll(async () => {
	p = await startTestPlatform({ HEARTBEAT_SEC: "2", SANDBOX_PAY_SECRET: SECRET, RATE_LIMIT_USER: "100000", RATE_LIMIT_IP: "100000", RATE_LIMIT_AUTH: "100000" });
	broker = p.node.broker;
	admin = (await p.api("POST", "/api/v1/auth/login", { login: ADMIN.username, password: ADMIN.password })).body.accessToken;
	cab = await registerCabinet(broker, [{ no: 1, size: "M" }, { no: 2, size: "M" }, { no: 3, size: "S" }]);
	const url = (await broker.call<{ url: string }, object>("hardware.endpoint", {})).url;
	// A person at the door: an opened door closes again 150 ms later, with the bag put in or taken out.
	sim = new SimulatedCabinet({ cabinetId: cab.cabinetId, secret: cab.secret, doors: cab.doors, mqttUrl: url, heartbeatSec: 2, autoCloseMs: 150 });
	await sim.start();
	await until("the cabinet online", async () => (await broker.call<any, any>("doors.cabinet", { cabinetId: cab.cabinetId })).online);
});
afterAll(async () => {
	await sim.stop();
	await p.stop();
});

describe("the whole life of an order", () => {
	it("reserve → deposit → pay → pickup, and the ledger, statement and reconciliation agree to the fen", async () => {
		const token = await user();
		const created = await p.api("POST", "/api/v1/orders", { pointId: cab.pointId, size: "M" }, { token });
		expect(created).toMatchObject({ status: 201, body: { status: "reserved", size: "M", doorId: expect.stringContaining(cab.cabinetId), doorNo: expect.any(Number) } });
		const id = created.body.id;

		// Not paid yet, nothing stored: these must be refused and change nothing.
		expect(await p.api("POST", `/api/v1/orders/${id}/checkout`, undefined, { token })).toMatchObject({ status: 409, body: { type: "INVALID_ORDER_STATE" } });

		const opened = await p.api("POST", `/api/v1/orders/${id}/open`, undefined, { token });
		expect(opened.status).toBe(200);
		expect(["depositing", "stored"]).toContain(opened.body.status);
		await until("the bag stored", async () => (await statusOf(id, token)) === "stored");
		expect((await order(id, token)).body.storedFrom).toEqual(expect.any(String));
		expect(await p.api("POST", `/api/v1/orders/${id}/cancel`, undefined, { token })).toMatchObject({ status: 409 });

		const quote = await p.api("GET", `/api/v1/orders/${id}/quote`, undefined, { token });
		expect(quote).toMatchObject({ status: 200, body: { amountFen: 800 } }); // M: 800 fen for the first 4 hours

		const checkout = await p.api("POST", `/api/v1/orders/${id}/checkout`, undefined, { token });
		expect(checkout).toMatchObject({ status: 200, body: { payment: { amountFen: 800, status: "pending", provider: "sandbox" }, order: { status: "paying" } } });
		const paymentId = checkout.body.payment.id;
		// Paying does not open the door yet.
		expect(await p.api("POST", `/api/v1/orders/${id}/open`, undefined, { token })).toMatchObject({ status: 409 });

		expect((await p.api("POST", `/api/v1/payments/${paymentId}/sandbox-pay`, {}, { token })).body).toMatchObject({ notified: true, outcome: "captured" });
		await until("the order paid", async () => (await statusOf(id, token)) === "paid");

		const pickup = await p.api("POST", `/api/v1/orders/${id}/open`, undefined, { token });
		expect(pickup.status).toBe(200);
		await until("the order completed", async () => (await statusOf(id, token)) === "completed");
		// The door is free again.
		const door = await broker.call<any, any>("doors.get", { doorId: created.body.doorId });
		expect(door).toMatchObject({ state: "available", orderId: null, occupied: false });

		// Money: 800 fen, commission 10 % (support/catalog's merchants), balanced, reconciled.
		const merchantId = (await broker.call<any, any>("merchants.pointForOrder", { pointId: cab.pointId })).merchantId;
		const ledger = await p.api("GET", `/api/v1/merchants/${merchantId}/ledger`, undefined, { token: admin });
		const mine = ledger.body.rows.filter((e: any) => e.paymentId === paymentId);
		expect(mine.map((e: any) => [e.account.split(":")[0], e.debitFen, e.creditFen]).sort()).toEqual([
			["merchant_payable", 0, 720], ["platform_revenue", 0, 80], ["provider_clearing", 800, 0],
		]);
		const day = new Date(Date.now() + 8 * 3600_000).toISOString().slice(0, 10);
		const statement = await p.api("GET", `/api/v1/merchants/${merchantId}/settlements?from=${day}&to=${day}`, undefined, { token: admin });
		expect(statement.body.rows).toEqual([{ merchantId, date: day, grossFen: 800, commissionFen: 80, refundsFen: 0, netFen: 720 }]);
		const rec = await p.api("GET", `/api/v1/admin/reconciliation?date=${day}`, undefined, { token: admin });
		expect(rec.body).toMatchObject({ mismatches: [] });
		expect(rec.body.capturedFen).toBeGreaterThanOrEqual(800);
	});
});

describe("rules around it", () => {
	it("cancels a reservation and frees the door; a stranger cannot see or touch the order", async () => {
		const token = await user();
		const other = await user();
		const created = (await p.api("POST", "/api/v1/orders", { pointId: cab.pointId, size: "S" }, { token })).body;
		expect((await order(created.id, other)).status).toBe(404);
		expect((await p.api("POST", `/api/v1/orders/${created.id}/cancel`, undefined, { token: other })).status).toBe(404);
		expect(await p.api("POST", `/api/v1/orders/${created.id}/cancel`, undefined, { token })).toMatchObject({ status: 200, body: { status: "cancelled" } });
		expect(await broker.call<any, any>("doors.get", { doorId: created.doorId })).toMatchObject({ state: "available", orderId: null });
		// The only S door is free again: the next order gets it.
		const again = await p.api("POST", "/api/v1/orders", { pointId: cab.pointId, size: "S" }, { token: other });
		expect(again).toMatchObject({ status: 201, body: { doorId: created.doorId } });
		// And now there is none.
		expect(await p.api("POST", "/api/v1/orders", { pointId: cab.pointId, size: "S" }, { token })).toMatchObject({ status: 409, body: { type: "NO_DOOR_AVAILABLE" } });
		await p.api("POST", `/api/v1/orders/${again.body.id}/cancel`, undefined, { token: other });
	});

	it("an Idempotency-Key replays the first answer, refuses another body, and stores nothing for a refused request", async () => {
		const token = await user();
		const key = { "idempotency-key": `k-${Date.now()}` };
		const first = await p.api("POST", "/api/v1/orders", { pointId: cab.pointId, size: "M" }, { token, headers: key });
		expect(first.status).toBe(201);
		const repeat = await p.api("POST", "/api/v1/orders", { pointId: cab.pointId, size: "M" }, { token, headers: key });
		expect(repeat).toMatchObject({ status: 201, body: { id: first.body.id } });
		expect(await p.api("POST", "/api/v1/orders", { pointId: cab.pointId, size: "S" }, { token, headers: key })).toMatchObject({ status: 422, body: { type: "IDEMPOTENCY_KEY_REUSED" } });
		const bad = { "idempotency-key": `bad-${Date.now()}` };
		expect((await p.api("POST", "/api/v1/orders", { pointId: cab.pointId, size: "XL" }, { token, headers: bad })).status).toBe(422);
		const okAfter = await p.api("POST", "/api/v1/orders", { pointId: cab.pointId, size: "M" }, { token, headers: bad });
		expect([201, 409]).toContain(okAfter.status); // the key was free: the request ran
		for (const o of [first.body, okAfter.body]) if (o?.id) await p.api("POST", `/api/v1/orders/${o.id}/cancel`, undefined, { token });
	});

	it("notifications: a forged one is 401 and changes nothing, a wrong amount is refused, ten copies capture once; refunds never exceed the capture", async () => {
		const token = await user();
		const { o, pay } = await checkedOut(token);
		const notify = (body: object, secret = SECRET) => {
			const raw = JSON.stringify(body);
			return p.api("POST", "/api/v1/payments/notify/sandbox", undefined, { raw, headers: { "content-type": "application/json", "x-sandbox-signature": sandboxSignature(secret, raw) } });
		};
		const good = { paymentId: pay.id, providerTxnId: "sbx_t1", amountFen: pay.amountFen, status: "success" };
		expect(await notify(good, "not-the-secret")).toMatchObject({ status: 401, body: { type: "INVALID_SIGNATURE" } });
		expect(await notify({ ...good, amountFen: 1 })).toMatchObject({ status: 422, body: { type: "AMOUNT_MISMATCH" } });
		expect(await statusOf(o.id, token)).toBe("paying");
		const ten = await Promise.all(Array.from({ length: 10 }, () => notify(good)));
		expect(ten.map(r => r.status)).toEqual(Array(10).fill(200));
		expect(ten.filter(r => r.body.outcome === "captured")).toHaveLength(1);
		await until("paid", async () => (await statusOf(o.id, token)) === "paid");
		const entries = await broker.call<any, any>("billing.ledger", { id: (await broker.call<any, any>("merchants.pointForOrder", { pointId: cab.pointId })).merchantId, pageSize: 100 });
		expect(entries.rows.filter((e: any) => e.paymentId === pay.id && e.kind === "capture")).toHaveLength(3);

		const refund = (amountFen: number | undefined, key: string) =>
			p.api("POST", `/api/v1/orders/${o.id}/refund`, { ...(amountFen ? { amountFen } : {}), reason: "door stuck" }, { token: admin, headers: { "idempotency-key": key } });
		expect(await refund(300, "r1")).toMatchObject({ status: 201, body: { amountFen: 300 } });
		expect(await refund(300, "r1")).toMatchObject({ status: 201, body: { amountFen: 300 } }); // a retry: not paid twice
		expect(await refund(600, "r2")).toMatchObject({ status: 422, body: { type: "REFUND_TOO_LARGE", data: { refundableFen: 500 } } });
		expect(await refund(undefined, "r3")).toMatchObject({ status: 201, body: { amountFen: 500 } });
		expect((await p.api("POST", `/api/v1/orders/${o.id}/refund`, { reason: "x" }, { token })).status).toBe(403); // a user cannot refund
		await broker.call("billing.sweepPending");
		const payment = (await p.api("GET", `/api/v1/payments/${pay.id}`, undefined, { token })).body;
		expect(payment).toMatchObject({ refundedFen: 800, status: "captured" });
		const day = new Date(Date.now() + 8 * 3600_000).toISOString().slice(0, 10);
		expect((await p.api("GET", `/api/v1/admin/reconciliation?date=${day}`, undefined, { token: admin })).body.mismatches).toEqual([]);
	});

	it("a paid bag behind a door that will not open: DOOR_FAULT, a refund proposed, confirmed by an operator", async () => {
		const token = await user();
		const { o, pay } = await checkedOut(token);
		await p.api("POST", `/api/v1/payments/${pay.id}/sandbox-pay`, {}, { token });
		await until("paid", async () => (await statusOf(o.id, token)) === "paid");
		(sim as unknown as { opts: { jamRate: number } }).opts.jamRate = 1; // the lock will not release
		try {
			expect(await p.api("POST", `/api/v1/orders/${o.id}/open`, undefined, { token })).toMatchObject({ status: 409, body: { type: "DOOR_FAULT" } });
		} finally {
			(sim as unknown as { opts: { jamRate: number } }).opts.jamRate = 0;
		}
		expect((await order(o.id, token)).body).toMatchObject({ status: "paid", refundProposed: { reason: expect.stringContaining("JAMMED") } });
		const refund = await p.api("POST", `/api/v1/orders/${o.id}/refund`, { reason: "door jammed, bag handed over by staff" }, { token: admin });
		expect(refund).toMatchObject({ status: 201, body: { amountFen: pay.amountFen } });
		expect((await order(o.id, token)).body.refundProposed).toBeNull();
		// The jammed door is marked faulty; an operator clears it after looking.
		expect(await broker.call<any, any>("doors.get", { doorId: o.doorId })).toMatchObject({ state: "fault" });
		await broker.call("doors.setDisabled", { doorId: o.doorId, disabled: false });
	});
});
