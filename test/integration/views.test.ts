/**
 * Views that say what they do not know: with the door actors unreachable,
 * GET /cabinets/:id answers the catalog part and says the live part is
 * unknown, instead of showing reserved or occupied doors as available.
 */
import type { ServiceBroker } from "moleculer";
import { ADMIN, startTestPlatform, until, type TestPlatform } from "../support/platform";
import { registerCabinet } from "../support/catalog";

let p: TestPlatform;
let broker: ServiceBroker;
let token: string;
beforeAll(async () => {
	p = await startTestPlatform();
	broker = p.node.broker;
	token = (await p.api("POST", "/api/v1/auth/login", { login: ADMIN.username, password: ADMIN.password })).body.accessToken;
});
afterAll(() => p.stop());

it("a cabinet whose door actors cannot be asked says so, and shows no door as free", async () => {
	const cab = await registerCabinet(broker, [{ no: 1, size: "M" }, { no: 2, size: "L" }]);
	await broker.call("doors.reserve", { doorId: `${cab.cabinetId}:01`, orderId: "ord_view_1" });
	const live = await p.api("GET", `/api/v1/cabinets/${cab.cabinetId}`, undefined, { token });
	expect(live.body).toMatchObject({ live: true, doors: [{ no: 1, state: "reserved", orderId: "ord_view_1" }, { no: 2, state: "available" }] });

	await broker.destroyService(broker.getLocalService("doors")!);
	const blind = await p.api("GET", `/api/v1/cabinets/${cab.cabinetId}`, undefined, { token });
	expect(blind.status).toBe(200);
	expect(blind.body).toMatchObject({ id: cab.cabinetId, live: false, online: null, liveError: expect.any(String) });
	for (const d of blind.body.doors) expect(d).toMatchObject({ state: null, open: null, occupied: null });
});

describe("a door command without an ack in time", () => {
	let q: TestPlatform;
	beforeAll(async () => {
		// The old trap: a caller timeout no longer than the door's own answered 503 "try again" for opens that ran.
		q = await startTestPlatform({ DOOR_COMMAND_TIMEOUT_MS: "1000", REQUEST_TIMEOUT_MS: "1000", HEARTBEAT_SEC: "1" });
	});
	afterAll(() => q.stop());

	it("answers 504 DOOR_TIMEOUT (outcome unknown), decided by the door actor, not a 503 from a caller's timeout", async () => {
		const { SimulatedCabinet } = await import("../../tools/simulator/cabinet");
		const b = q.node.broker;
		const cab = await registerCabinet(b, [{ no: 1, size: "M" }]);
		const url = (await b.call<{ url: string }, object>("hardware.endpoint", {})).url;
		const sim = new SimulatedCabinet({ cabinetId: cab.cabinetId, secret: cab.secret, doors: cab.doors, mqttUrl: url, heartbeatSec: 1, latencyMs: [2500, 2500] });
		await sim.start();
		try {
			await until("the cabinet online", async () => (await b.call<any, any>("doors.cabinet", { cabinetId: cab.cabinetId })).online);
			const admin = (await q.api("POST", "/api/v1/auth/login", { login: ADMIN.username, password: ADMIN.password })).body.accessToken;
			const r = await q.api("POST", `/api/v1/doors/${cab.cabinetId}:01/open`, { reason: "slow cabinet" }, { token: admin });
			expect(r).toMatchObject({ status: 504, body: { type: "DOOR_TIMEOUT" } });
		} finally {
			await sim.stop();
		}
	});
});
