/**
 * What operators see: a point's cabinets with their doors live, the cabinets
 * offline now, one door — and, once the door actors cannot be asked, views
 * that say so instead of showing a door as free.
 */
import type { ServiceBroker } from "moleculer";
import { SimulatedCabinet } from "../../tools/simulator/cabinet";
import { ADMIN, startTestPlatform, until, type TestPlatform } from "../support/platform";
import { registerCabinet, type RegisteredCabinet } from "../support/catalog";

let p: TestPlatform;
let broker: ServiceBroker;
let admin: string;
let sim: SimulatedCabinet;
let online: RegisteredCabinet;
let silent: RegisteredCabinet;
let other: RegisteredCabinet;
let merchantTok: string;
const calls: string[] = [];

beforeAll(async () => {
	p = await startTestPlatform({ HEARTBEAT_SEC: "1" });
	broker = p.node.broker;
	admin = (await p.api("POST", "/api/v1/auth/login", { login: ADMIN.username, password: ADMIN.password })).body.accessToken;
	online = await registerCabinet(broker, [{ no: 1, size: "M" }, { no: 2, size: "L" }]);
	silent = await registerCabinet(broker, [{ no: 1, size: "S" }], online); // same point, never connects
	other = await registerCabinet(broker, [{ no: 1, size: "S" }]); // another merchant's
	const url = (await broker.call<{ url: string }, object>("hardware.endpoint", {})).url;
	sim = new SimulatedCabinet({ cabinetId: online.cabinetId, secret: online.secret, doors: online.doors, mqttUrl: url, heartbeatSec: 1 });
	await sim.start();
	await until("the cabinet online", async () => (await broker.call<any, any>("doors.cabinet", { cabinetId: online.cabinetId })).online);
	await broker.call("doors.reserve", { doorId: `${online.cabinetId}:02`, orderId: "ord_ops_1" });

	const merchantId = (await broker.call<any, any>("merchants.getPoint", { id: online.pointId })).merchantId;
	const password = "staff-secret-pass-9";
	expect((await p.api("POST", "/api/v1/admin/users", { username: "ops.views.m", password, roles: ["merchant"], merchantId }, { token: admin })).status).toBe(201);
	merchantTok = (await p.api("POST", "/api/v1/auth/login", { login: "ops.views.m", password })).body.accessToken;

	// Counts the door actions the views make (batching: one call per doors node, not per cabinet).
	const call = broker.call.bind(broker);
	jest.spyOn(broker, "call").mockImplementation(((name: string, ...rest: unknown[]) => {
		if (typeof name === "string" && name.startsWith("doors.")) calls.push(name);
		return (call as any)(name, ...rest);
	}) as any);
}, 30_000);
afterAll(async () => {
	await sim?.stop().catch(() => undefined);
	await p.stop();
}, 30_000);

const get = (path: string, token = admin) => p.api("GET", `/api/v1${path}`, undefined, { token });

describe("with the door actors", () => {
	it("GET /points/:id/cabinets pages the point's cabinets with their live doors, in one doors call", async () => {
		calls.length = 0;
		const r = await get(`/points/${online.pointId}/cabinets?pageSize=10`);
		expect(r.status).toBe(200);
		expect(r.body).toMatchObject({ total: 2, page: 1, pageSize: 10 });
		const byId = new Map(r.body.rows.map((c: any) => [c.id, c]));
		expect(byId.get(online.cabinetId)).toMatchObject({
			pointId: online.pointId, online: true, live: true, lastSeenAt: expect.any(String),
			doors: [
				{ id: `${online.cabinetId}:01`, no: 1, size: "M", disabled: false, state: "available", open: false, occupied: false },
				{ id: `${online.cabinetId}:02`, no: 2, size: "L", disabled: false, state: "reserved", orderId: "ord_ops_1" },
			],
		});
		expect(byId.get(silent.cabinetId)).toMatchObject({ online: false, live: true, doors: [{ no: 1, state: "available" }] });
		expect(calls.filter(c => c === "doors.cabinets")).toHaveLength(1);
		expect(calls.filter(c => c === "doors.cabinet")).toHaveLength(0);

		const second = await get(`/points/${online.pointId}/cabinets?page=2&pageSize=1`);
		expect(second.body).toMatchObject({ total: 2, page: 2, pageSize: 1, rows: [expect.objectContaining({ id: [online.cabinetId, silent.cabinetId].sort()[1] })] });
	});

	it("GET /cabinets?online=false lists the cabinets offline now, a registered one that never connected among them", async () => {
		const off = await get(`/cabinets?online=false&pageSize=100`);
		expect(off.status).toBe(200);
		const ids = off.body.rows.map((c: any) => c.id);
		expect(ids).toEqual(expect.arrayContaining([silent.cabinetId, other.cabinetId]));
		expect(ids).not.toContain(online.cabinetId);
		expect(off.body.partial).toBeUndefined();
		expect(off.body.rows.find((c: any) => c.id === silent.cabinetId)).toEqual({
			id: silent.cabinetId, pointId: silent.pointId, pointName: expect.any(String), merchantId: expect.any(String),
			cityCode: expect.any(String), online: false, lastSeenAt: null,
		});
		const on = await get(`/cabinets?online=true&pointId=${online.pointId}`);
		expect(on.body).toMatchObject({ total: 1, rows: [{ id: online.cabinetId, online: true, lastSeenAt: expect.any(String) }] });
		const city = (await broker.call<any, any>("merchants.getPoint", { id: online.pointId })).cityCode;
		const inCity = await get(`/cabinets?cityCode=${city}`);
		expect(inCity.body.rows.map((c: any) => c.id).sort()).toEqual([online.cabinetId, silent.cabinetId].sort());
	});

	it("merchants see only their own cabinets and points", async () => {
		const mine = await get(`/cabinets?pageSize=100`, merchantTok);
		expect(mine.body.rows.map((c: any) => c.id).sort()).toEqual([online.cabinetId, silent.cabinetId].sort());
		expect((await get(`/points/${other.pointId}/cabinets`, merchantTok)).status).toBe(403);
		expect((await get(`/doors/${other.cabinetId}:01`, merchantTok)).status).toBe(403);
		expect((await get(`/points/${online.pointId}/cabinets`, merchantTok)).body.total).toBe(2);
	});

	it("GET /doors/:doorId answers the door with its live state", async () => {
		const r = await get(`/doors/${online.cabinetId}:02`);
		expect(r.body).toEqual({
			id: `${online.cabinetId}:02`, cabinetId: online.cabinetId, pointId: online.pointId, no: 2, size: "L", disabled: false,
			state: "reserved", open: false, occupied: false, orderId: "ord_ops_1", live: true,
		});
		expect((await get(`/doors/${online.cabinetId}:07`)).status).toBe(404);
		expect((await get(`/doors/nonsense`)).status).toBe(422);
	});
});

describe("remote opens in the audit log", () => {
	const auditOf = async (doorId: string) => (await get(`/admin/audit?targetId=${encodeURIComponent(doorId)}`)).body.rows.filter((r: any) => r.action === "door.open");

	it("records the outcome of each open on its attempt's entry: opened, or the error (CABINET_OFFLINE)", async () => {
		const door = `${online.cabinetId}:01`;
		const opened = await p.api("POST", `/api/v1/doors/${door}/open`, { reason: "客户忘拿东西 left behind" }, { token: admin });
		expect(opened).toMatchObject({ status: 200, body: { id: door } });
		expect(sim.doors.get(1)!.open).toBe(true);
		expect(await auditOf(door)).toEqual([expect.objectContaining({ targetId: door, reason: "客户忘拿东西 left behind", outcome: "opened", outcomeAt: expect.anything() })]);

		const offline = `${silent.cabinetId}:01`;
		const refused = await p.api("POST", `/api/v1/doors/${offline}/open`, { reason: "检查柜门 check" }, { token: admin });
		expect(refused).toMatchObject({ status: 503, body: { type: "CABINET_OFFLINE" } });
		expect(await auditOf(offline)).toEqual([expect.objectContaining({ outcome: "CABINET_OFFLINE" })]);
	});

	it("answers the door's result even when the outcome cannot be written", async () => {
		const merchants = broker.getLocalService("merchants") as any;
		const update = jest.spyOn(merchants.repos.audit, "updateById").mockRejectedValueOnce(new Error("store gone"));
		try {
			const door = `${online.cabinetId}:01`;
			sim.close(1, false);
			await until("the door closed", async () => !(await broker.call<any, any>("doors.get", { doorId: door })).open);
			const r = await p.api("POST", `/api/v1/doors/${door}/open`, { reason: "再开一次 again" }, { token: admin });
			expect(r).toMatchObject({ status: 200, body: { id: door } });
			expect(update).toHaveBeenCalledTimes(1);
			const rows = await auditOf(door);
			expect(rows).toHaveLength(2);
			expect(rows[0]).toMatchObject({ reason: "再开一次 again" });
			expect(rows[0].outcome).toBeUndefined(); // the attempt stays recorded
		} finally {
			update.mockRestore();
		}
	});
});

describe("without the door actors", () => {
	beforeAll(async () => {
		await broker.destroyService(broker.getLocalService("doors")!);
	});

	it("GET /cabinets/:id, /points/:id/cabinets and /doors/:doorId say the live part is unknown and show no door as free", async () => {
		const blind = (v: any) => {
			expect(v).toMatchObject({ live: false, online: null, lastSeenAt: null, liveError: expect.any(String) });
			for (const d of v.doors) expect(d).toMatchObject({ state: null, open: null, occupied: null });
		};
		const one = await get(`/cabinets/${online.cabinetId}`);
		expect(one.status).toBe(200);
		blind(one.body);
		const list = await get(`/points/${online.pointId}/cabinets`);
		expect(list.status).toBe(200);
		expect(list.body.rows).toHaveLength(2);
		list.body.rows.forEach(blind);
		const door = await get(`/doors/${online.cabinetId}:02`);
		expect(door.status).toBe(200);
		expect(door.body).toMatchObject({ live: false, state: null, open: null, occupied: null, liveError: expect.any(String), size: "L" });
		expect(door.body.orderId).toBeUndefined();
	});

	it("GET /cabinets?online=false says it is partial and does not call any cabinet offline", async () => {
		const r = await get(`/cabinets?online=false&pointId=${online.pointId}`);
		expect(r.status).toBe(200);
		expect(r.body).toMatchObject({ partial: true, unavailable: ["doors"], total: 2 });
		for (const row of r.body.rows) expect(row.online).toBeNull();
	});

	it("an open records why it failed", async () => {
		const door = `${online.cabinetId}:02`;
		const r = await p.api("POST", `/api/v1/doors/${door}/open`, { reason: "无门服务 no doors" }, { token: admin });
		expect(r).toMatchObject({ status: 503, body: { type: "SERVICE_UNAVAILABLE" } });
		const rows = (await get(`/admin/audit?targetId=${encodeURIComponent(door)}`)).body.rows;
		expect(rows[0]).toMatchObject({ action: "door.open", outcome: r.body.type });
	});
});
