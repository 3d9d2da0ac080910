/**
 * The business metrics, end to end: one order through its whole life with a
 * simulated cabinet over real MQTT (reserve → deposit → pay → pickup, then a
 * partial refund), a nearby search asked twice, an alert sent to a fake
 * DingTalk robot, and a few MQTT troublemakers; then the node's metrics port
 * must show each series with the value that flow produces.
 */
import type { AddressInfo } from "node:net";
import mqtt from "mqtt";
import type { ServiceBroker } from "moleculer";
import { SimulatedCabinet } from "../../tools/simulator/cabinet";
import { topicOf } from "../../domain/protocol";
import { FakeDingTalk } from "../support/fake-dingtalk";
import { registerCabinet, type RegisteredCabinet } from "../support/catalog";
import { ADMIN, newPhone, startTestPlatform, until, type TestPlatform } from "../support/platform";

jest.setTimeout(60_000);

const ROBOT_SECRET = "SEC0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd";

let p: TestPlatform;
let broker: ServiceBroker;
let cab: RegisteredCabinet;
let sim: SimulatedCabinet;
let mqttUrl: string;
const fake = new FakeDingTalk();

/** The node's Prometheus text, from its own metrics port (where Prometheus scrapes). */
async function scrape(): Promise<string> {
	const reporter = (broker.metrics as any).reporter.find((r: any) => r.server);
	const { port } = reporter.server.address() as AddressInfo;
	return (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
}

/** A sample's value, by metric name and its own labels (the node's namespace and nodeID labels aside); undefined when absent. */
function value(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
	for (const line of text.split("\n")) {
		const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
		if (!m || m[1] !== name) continue;
		const have = Object.fromEntries([...(m[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map(x => [x[1], x[2]]));
		if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3]);
	}
	return undefined;
}

beforeAll(async () => {
	await fake.start();
	fake.addRobot({ token: "t-metrics", secret: ROBOT_SECRET, keyword: "告警" });
	p = await startTestPlatform({
		HEARTBEAT_SEC: "2", SANDBOX_PAY_SECRET: "metrics-sandbox-secret", RATE_LIMIT_USER: "100000", RATE_LIMIT_IP: "100000", RATE_LIMIT_AUTH: "100000",
		ALERTS_TICK_MS: "100",
		ALERTS_TIMING: JSON.stringify(Object.fromEntries(["P1", "P2", "P3"].map(s => [s, { groupWaitMs: 100, groupIntervalMs: 300, repeatIntervalMs: 3600_000 }]))),
		DINGTALK_ROBOTS: JSON.stringify([{ name: "ops", url: fake.url("t-metrics"), secret: ROBOT_SECRET, keyword: "告警" }]),
	});
	broker = p.node.broker;
	cab = await registerCabinet(broker, [{ no: 1, size: "M" }, { no: 2, size: "S" }]);
	mqttUrl = (await broker.call<{ url: string }, object>("hardware.endpoint", {})).url;
	// A person at the door: an opened door closes again 150 ms later, with the bag put in or taken out.
	sim = new SimulatedCabinet({ cabinetId: cab.cabinetId, secret: cab.secret, doors: cab.doors, mqttUrl, heartbeatSec: 2, autoCloseMs: 150 });
	await sim.start();
	await until("the cabinet online", async () => (await broker.call<any, any>("doors.cabinet", { cabinetId: cab.cabinetId })).online);
});
afterAll(async () => {
	await sim?.stop();
	await p?.stop();
	await fake.stop();
});

it("show what one order's life, a nearby search, an alert and MQTT trouble produced", async () => {
	const token = (await p.api("POST", "/api/v1/auth/register", { phone: newPhone(), password: "metrics-pass-123" })).body.accessToken as string;
	const admin = (await p.api("POST", "/api/v1/auth/login", { login: ADMIN.username, password: ADMIN.password })).body.accessToken as string;
	const statusOf = async (id: string) => (await p.api("GET", `/api/v1/orders/${id}`, undefined, { token })).body.status as string;
	const orders = broker.getLocalService("orders") as unknown as { countOrders(): Promise<void> };

	// Before anything happened, the families are there at 0.
	let text = await scrape();
	expect(value(text, "doors_opens_total", { purpose: "deposit", result: "ok" })).toBe(0);
	expect(value(text, "orders_transitions_total", { to: "completed" })).toBe(0);
	expect(value(text, "billing_payments_captured_fen_total", { provider: "sandbox" })).toBe(0);

	// The order's life.
	const order = (await p.api("POST", "/api/v1/orders", { pointId: cab.pointId, size: "M" }, { token })).body;
	const deposit = await p.api("POST", `/api/v1/orders/${order.id}/open`, undefined, { token });
	expect(deposit.status).toBe(200);
	await until("the bag stored", async () => (await statusOf(order.id)) === "stored");
	await orders.countOrders();
	text = await scrape();
	expect(value(text, "orders_current", { status: "stored" })).toBe(1);
	expect(value(text, "orders_current", { status: "reserved" })).toBe(0);

	const checkout = (await p.api("POST", `/api/v1/orders/${order.id}/checkout`, undefined, { token })).body;
	const amountFen = checkout.payment.amountFen as number;
	expect(amountFen).toBeGreaterThan(0);
	expect((await p.api("POST", `/api/v1/payments/${checkout.payment.id}/sandbox-pay`, {}, { token })).body).toMatchObject({ outcome: "captured" });
	await until("the order paid", async () => (await statusOf(order.id)) === "paid");
	const pickup = await p.api("POST", `/api/v1/orders/${order.id}/open`, undefined, { token });
	expect(pickup.status).toBe(200);
	await until("the order completed", async () => (await statusOf(order.id)) === "completed");
	const refund = await p.api("POST", `/api/v1/orders/${order.id}/refund`, { amountFen: 300, reason: "metrics test" }, { token: admin });
	expect(refund.status).toBe(201);
	await orders.countOrders();

	// A nearby search, twice: computed, then from the cache.
	for (let i = 0; i < 2; i++) expect((await p.api("GET", `/api/v1/points/nearby?lat=${cab.lat}&lng=${cab.lng}`)).status).toBe(200);

	// An alert that fires at once, sent to the robot.
	await broker.call("alerts.signal", { rule: "DoorForcedOpen", labels: { cabinetId: "cab_metrics_1", doorId: "cab_metrics_1:1" }, active: true, summary: "forced" });
	await until("the alert shown", () => fake.messages.length === 1);

	// MQTT trouble: a stranger with a wrong password, a malformed report, a subscription outside the cabinet's topics.
	const stranger = mqtt.connect(mqttUrl, { clientId: "cab_nobody", username: "cab_nobody", password: "wrong", reconnectPeriod: 0, connectTimeout: 5000 });
	await new Promise<void>(resolve => stranger.once("error", () => resolve()));
	stranger.end(true);
	await sim.raw(topicOf(cab.cabinetId, "event"), "{not json");
	expect(await sim.trySubscribe("lockers/#")).toEqual([128]);
	await until("the malformed report counted", async () => value(await scrape(), "mqtt_messages_dropped_total", { reason: "malformed" }) === 1);

	text = await scrape();
	// Doors: both opens ok, each acked (so in the round trip histogram), one cabinet online here.
	expect(value(text, "doors_opens_total", { purpose: "deposit", result: "ok" })).toBe(1);
	expect(value(text, "doors_opens_total", { purpose: "pickup", result: "ok" })).toBe(1);
	expect(value(text, "doors_command_roundtrip_ms_count", { action: "open" })).toBe(2);
	expect(value(text, "doors_command_roundtrip_ms_bucket", { action: "open", le: "+Inf" })).toBe(2);
	expect(value(text, "doors_command_roundtrip_ms_bucket", { action: "open", le: "10000" })).toBe(2);
	expect(value(text, "doors_cabinets_online")).toBe(1);

	// MQTT: the cabinet and the platform's two clients (hardware bridge, doors), the refusals, the bridge up.
	expect(value(text, "mqtt_connections", { kind: "cabinet" })).toBe(1);
	expect(value(text, "mqtt_connections", { kind: "platform" })).toBe(2);
	expect(value(text, "mqtt_connections_refused_total", { reason: "bad_credentials" })).toBe(1);
	expect(value(text, "mqtt_messages_dropped_total", { reason: "malformed" })).toBe(1);
	expect(value(text, "mqtt_messages_dropped_total", { reason: "denied_subscribe" })).toBe(1);
	expect(value(text, "mqtt_bridge_connected")).toBe(1);

	// Orders: every status entered once (depositing and picking_up only when the open's answer wrote them
	// before the door's news moved the order on), and nothing open any more.
	const entered = { reserved: 1, depositing: deposit.body.status === "depositing" ? 1 : 0, stored: 1, paying: 1, paid: 1, picking_up: pickup.body.status === "picking_up" ? 1 : 0, completed: 1, cancelled: 0, expired: 0 };
	for (const [to, n] of Object.entries(entered)) expect([to, value(text, "orders_transitions_total", { to })]).toEqual([to, n]);
	for (const status of ["reserved", "depositing", "stored", "paying", "paid", "picking_up"]) expect([status, value(text, "orders_current", { status })]).toEqual([status, 0]);

	// Money: what was paid, and the refund.
	expect(value(text, "billing_payments_captured_total", { provider: "sandbox" })).toBe(1);
	expect(value(text, "billing_payments_captured_fen_total", { provider: "sandbox" })).toBe(amountFen);
	expect(value(text, "billing_refunds_total", { provider: "sandbox" })).toBe(1);
	expect(value(text, "billing_refunds_fen_total", { provider: "sandbox" })).toBe(300);

	// Alerts: one P1 fired, one message sent.
	expect(value(text, "alerts_fired_total", { severity: "P1" })).toBe(1);
	expect(value(text, "alerts_fired_total", { severity: "P2" })).toBe(0);
	expect(value(text, "alerts_notifications_total", { channel: "dingtalk", result: "sent" })).toBe(1);

	// Geo: two searches timed, one computed, one from the cache.
	expect(value(text, "geo_nearby_duration_ms_count")).toBe(2);
	expect(value(text, "geo_nearby_cache", { result: "miss" })).toBe(1);
	expect(value(text, "geo_nearby_cache", { result: "hit" })).toBe(1);

	// Help text, and never an id as a label.
	expect(text).toContain("# HELP doors_opens_total Door opens finished by the door actors");
	for (const id of [cab.cabinetId, cab.pointId, order.id, checkout.payment.id]) expect(text).not.toContain(id);
});

describe("with metrics off", () => {
	it("the same flow's code paths run and nothing is registered", async () => {
		const off = await startTestPlatform({ METRICS: "false", HEARTBEAT_SEC: "2" });
		try {
			const b = off.node.broker;
			const reg = await registerCabinet(b, [{ no: 1, size: "S" }]);
			const url = (await b.call<{ url: string }, object>("hardware.endpoint", {})).url;
			const s = new SimulatedCabinet({ cabinetId: reg.cabinetId, secret: reg.secret, doors: reg.doors, mqttUrl: url, heartbeatSec: 2, autoCloseMs: 100 });
			await s.start();
			try {
				await until("the cabinet online", async () => (await b.call<any, any>("doors.cabinet", { cabinetId: reg.cabinetId })).online);
				const token = (await off.api("POST", "/api/v1/auth/register", { phone: newPhone(), password: "metrics-pass-123" })).body.accessToken;
				const o = (await off.api("POST", "/api/v1/orders", { pointId: reg.pointId, size: "S" }, { token })).body;
				expect((await off.api("POST", `/api/v1/orders/${o.id}/open`, undefined, { token })).status).toBe(200);
				expect((await off.api("GET", `/api/v1/points/nearby?lat=${reg.lat}&lng=${reg.lng}`)).status).toBe(200);
				await (b.getLocalService("orders") as unknown as { countOrders(): Promise<void> }).countOrders();
				expect(b.metrics.getMetric("doors.opens.total")).toBeNull();
				expect(b.metrics.getMetric("geo.nearby.duration.ms")).toBeNull();
				expect((await off.api("GET", "/metrics")).body).toBe("metrics are disabled\n");
			} finally {
				await s.stop();
			}
		} finally {
			await off.stop();
		}
	});
});
