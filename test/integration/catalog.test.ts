/**
 * The catalog routes of API.md ("Catalog", "Finding a storage point") through
 * the real gateway, with the whole platform in this process: CRUD as admin,
 * merchant isolation across roles, catalog events reaching the geo read model
 * without a restart, the city map adding up, and nearby validation.
 *
 * Every test makes its own city (unique code) far from the others' cities, so
 * the tests do not see each other's points.
 */
import * as h3 from "h3-js";
import { ADMIN, newPhone, startTestPlatform, type HttpAnswer, type TestPlatform } from "../support/platform";
import { DEFAULT_PRICING } from "../../domain/catalog";

const V1 = "/api/v1";
let p: TestPlatform;
let adminToken: string;
let adminId: string;

beforeAll(async () => {
	p = await startTestPlatform({ RATE_LIMIT_AUTH: "100000", RATE_LIMIT_IP: "100000", RATE_LIMIT_USER: "100000" });
	const login = await p.api("POST", `${V1}/auth/login`, { login: ADMIN.username, password: ADMIN.password });
	expect(login.status).toBe(200);
	adminToken = login.body.accessToken;
	adminId = login.body.user.id;
});
afterAll(() => p.stop());

// ---------------------------------------------------------------- helpers

type Size = "S" | "M" | "L";
type Doors = { no: number; size: Size }[];

const call = (method: string, path: string, body?: unknown, token?: string): Promise<HttpAnswer> =>
	p.api(method, V1 + path, body, token ? { token } : {});
const asAdmin = (method: string, path: string, body?: unknown) => call(method, path, body, adminToken);

let citySeq = 0;
/** A fresh city code (2–8 capital letters) and a place for it, ≥ 300 km from every other test city. */
function newCityPlace(): { code: string; lat: number; lng: number } {
	const n = citySeq++;
	const code = `Q${String.fromCharCode(65 + Math.floor(n / 26) % 26)}${String.fromCharCode(65 + (n % 26))}`;
	return { code, lat: 22 + (n % 8) * 3, lng: 100 + Math.floor(n / 8) * 4 };
}

async function createCity(name = "测试城"): Promise<{ code: string; lat: number; lng: number }> {
	const place = newCityPlace();
	const r = await asAdmin("POST", "/cities", { ...place, name });
	expect(r.status).toBe(201);
	return place;
}

let merchantSeq = 0;
async function createMerchant(name = `商户${++merchantSeq}`): Promise<string> {
	const r = await asAdmin("POST", "/merchants", { name, contactPhone: "+86 21 5555 0000", commissionRate: 0.1 });
	expect(r.status).toBe(201);
	return r.body.id;
}

async function createPoint(merchantId: string, cityCode: string, lat: number, lng: number, extra: Record<string, unknown> = {}, token = adminToken) {
	const r = await call("POST", "/points", { merchantId, cityCode, name: `寄存点${lat.toFixed(4)}`, address: "测试路1号", lat, lng, ...extra }, token);
	expect(r.status).toBe(201);
	return r.body as { id: string; name: string; lat: number; lng: number; available: Record<Size, number> };
}

async function createCabinet(pointId: string, doors: Doors, token = adminToken) {
	const r = await call("POST", "/cabinets", { pointId, doors }, token);
	expect(r.status).toBe(201);
	return r.body as { cabinet: { id: string; doors: { id: string; no: number; size: Size; state: string }[] }; credentials: { username: string; password: string } };
}

const doorsOf = (...sizes: Size[]): Doors => sizes.map((size, i) => ({ no: i + 1, size }));

async function getPoint(id: string) {
	const r = await call("GET", `/points/${id}`);
	expect(r.status).toBe(200);
	return r.body;
}

async function auditTotal(): Promise<number> {
	const r = await asAdmin("GET", "/admin/audit?pageSize=1");
	expect(r.status).toBe(200);
	return r.body.total;
}

async function audits(targetId: string): Promise<any[]> {
	const r = await asAdmin("GET", `/admin/audit?targetId=${encodeURIComponent(targetId)}&pageSize=100`);
	expect(r.status).toBe(200);
	return r.body.rows;
}

async function cityPointsCount(code: string): Promise<number> {
	const r = (await call("GET", "/cities")).body as { code: string; points: number }[];
	return r.find(c => c.code === code)!.points;
}

const repoCount = (name: "cities" | "merchants" | "points" | "cabinets"): Promise<number> =>
	(p.node.broker.getLocalService("merchants") as any).repos[name].count({});

/** Fields a 422 lists. */
const fieldsOf = (r: HttpAnswer): string[] => (Array.isArray(r.body?.data) ? r.body.data.map((d: any) => d.field) : []);

/**
 * Polls an HTTP answer until it satisfies `ok` (the geo read model applies
 * catalog events asynchronously), with a deadline — never a fixed sleep.
 */
async function eventually(probe: () => Promise<HttpAnswer>, ok: (r: HttpAnswer) => boolean, what: string, timeoutMs = 5000): Promise<HttpAnswer> {
	const deadline = Date.now() + timeoutMs;
	for (;;) {
		const r = await probe();
		if (ok(r)) return r;
		if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}; last answer ${r.status} ${JSON.stringify(r.body).slice(0, 500)}`);
		await new Promise(resolve => setTimeout(resolve, 5));
	}
}

const ids = (r: HttpAnswer): string[] => (r.body?.rows ?? []).map((row: any) => row.id);
const nearby = (lat: number, lng: number, q = "") => call("GET", `/points/nearby?lat=${lat}&lng=${lng}${q}`);

// ---------------------------------------------------------------- 1. CRUD as admin

describe("catalog CRUD as admin", () => {
	it("cities: create, duplicate 409, bad code 422, listed with a growing point count", async () => {
		const place = newCityPlace();
		const created = await asAdmin("POST", "/cities", { ...place, name: "杭州" });
		expect(created).toMatchObject({ status: 201, body: { code: place.code, name: "杭州", lat: place.lat, lng: place.lng, points: 0 } });

		const dup = await asAdmin("POST", "/cities", { ...place, name: "又一个" });
		expect(dup).toMatchObject({ status: 409, body: { code: 409 } });

		const citiesBefore = await repoCount("cities");
		for (const code of ["hz", "H", "H1", "TOOLONGCODE"]) {
			const bad = await asAdmin("POST", "/cities", { code, name: "坏", lat: 30, lng: 120 });
			expect(bad).toMatchObject({ status: 422, body: { type: "VALIDATION_ERROR" } });
			expect(fieldsOf(bad)).toContain("code");
		}
		const unknownField = await asAdmin("POST", "/cities", { ...newCityPlace(), name: "x", population: 1 });
		expect(unknownField.status).toBe(422);
		expect(fieldsOf(unknownField)).toContain("population");
		expect(await repoCount("cities")).toBe(citiesBefore);

		const list = await call("GET", "/cities");
		expect(list.status).toBe(200);
		expect(list.body).toContainEqual({ code: place.code, name: "杭州", lat: place.lat, lng: place.lng, points: 0 });

		const merchantId = await createMerchant();
		await createPoint(merchantId, place.code, place.lat, place.lng);
		expect(await cityPointsCount(place.code)).toBe(1);
		await createPoint(merchantId, place.code, place.lat + 0.01, place.lng);
		expect(await cityPointsCount(place.code)).toBe(2);

		expect((await audits(place.code)).map(a => a.action)).toEqual(["city.create"]);
	});

	it("merchants: create, bad commission 422, unknown field 422 and nothing stored", async () => {
		const ok = await asAdmin("POST", "/merchants", { name: "行李无忧", contactPhone: "13800001111", commissionRate: 0.15 });
		expect(ok).toMatchObject({ status: 201, body: { name: "行李无忧", contactPhone: "13800001111", commissionRate: 0.15 } });
		expect(ok.body.id).toEqual(expect.any(String));
		expect(await asAdmin("GET", `/merchants/${ok.body.id}`)).toMatchObject({ status: 200, body: { id: ok.body.id, name: "行李无忧" } });

		const merchantsBefore = await repoCount("merchants");
		const auditBefore = await auditTotal();

		const rate = await asAdmin("POST", "/merchants", { name: "贪心", contactPhone: "13800001112", commissionRate: 1.5 });
		expect(rate).toMatchObject({ status: 422, body: { type: "VALIDATION_ERROR" } });
		expect(fieldsOf(rate)).toEqual(["commissionRate"]);

		const unknown = await asAdmin("POST", "/merchants", { name: "多嘴", contactPhone: "13800001113", commissionRate: 0.1, bankAccount: "x" });
		expect(unknown).toMatchObject({ status: 422, body: { type: "VALIDATION_ERROR" } });
		expect(fieldsOf(unknown)).toEqual(["bankAccount"]);

		expect(await repoCount("merchants")).toBe(merchantsBefore);
		expect(await auditTotal()).toBe(auditBefore);
	});

	it("points, cabinets, doors, credentials and the audit trail", async () => {
		const city = await createCity("苏州");
		const merchantId = await createMerchant();
		const auditBefore = await auditTotal();

		// --- points
		const created = await asAdmin("POST", "/points", {
			merchantId, cityCode: city.code, name: "苏州站寄存", address: "苏州站北广场", lat: city.lat, lng: city.lng,
		});
		expect(created).toMatchObject({
			status: 201,
			body: { merchantId, cityCode: city.code, name: "苏州站寄存", status: "active", available: { S: 0, M: 0, L: 0 }, pricing: DEFAULT_PRICING },
		});
		const pointId: string = created.body.id;

		const pointsBefore = await repoCount("points");
		const noCity = await asAdmin("POST", "/points", { merchantId, cityCode: "ZZZZZZ", name: "x", address: "y", lat: city.lat, lng: city.lng });
		expect(noCity).toMatchObject({ status: 422, body: { type: "VALIDATION_ERROR" } });
		expect(fieldsOf(noCity)).toEqual(["cityCode"]);
		const noMerchant = await asAdmin("POST", "/points", { merchantId: "mer_nope", cityCode: city.code, name: "x", address: "y", lat: city.lat, lng: city.lng });
		expect(noMerchant.status).toBe(422);
		expect(fieldsOf(noMerchant)).toEqual(["merchantId"]);
		const badLat = await asAdmin("POST", "/points", { merchantId, cityCode: city.code, name: "x", address: "y", lat: 91, lng: city.lng });
		expect(badLat.status).toBe(422);
		expect(fieldsOf(badLat)).toEqual(["lat"]);
		const unknown = await asAdmin("POST", "/points", { merchantId, cityCode: city.code, name: "x", address: "y", lat: city.lat, lng: city.lng, rating: 5 });
		expect(unknown.status).toBe(422);
		expect(fieldsOf(unknown)).toEqual(["rating"]);
		// Unknown fields inside nested objects are refused too, not stored.
		const price = { firstHours: 4, firstFen: 500, hourFen: 100, dayCapFen: 2000 };
		const nested = await asAdmin("POST", "/points", { merchantId, cityCode: city.code, name: "x", address: "y", lat: city.lat, lng: city.lng, pricing: { S: { ...price, bonusFen: 1 } } });
		expect(nested.status).toBe(422);
		expect(fieldsOf(nested)).toEqual(["pricing.S.bonusFen"]);
		const xl = await asAdmin("POST", "/points", { merchantId, cityCode: city.code, name: "x", address: "y", lat: city.lat, lng: city.lng, pricing: { XL: price } });
		expect(xl.status).toBe(422);
		expect(fieldsOf(xl)).toEqual(["pricing.XL"]);
		expect(await repoCount("points")).toBe(pointsBefore);

		// Anyone may read a point.
		const read = await call("GET", `/points/${pointId}`);
		expect(read).toMatchObject({ status: 200, body: { id: pointId, available: { S: 0, M: 0, L: 0 }, pricing: DEFAULT_PRICING } });
		expect(await call("GET", "/points/pt_missing")).toMatchObject({ status: 404, body: { type: "NOT_FOUND" } });

		const patched = await asAdmin("PATCH", `/points/${pointId}`, { name: "苏州站北寄存", openHours: "06:00-23:00", pricing: { L: { firstHours: 2, firstFen: 1500, hourFen: 300, dayCapFen: 5000 } } });
		expect(patched).toMatchObject({ status: 200, body: { id: pointId, name: "苏州站北寄存", openHours: "06:00-23:00" } });
		expect(patched.body.pricing).toEqual({ ...DEFAULT_PRICING, L: { firstHours: 2, firstFen: 1500, hourFen: 300, dayCapFen: 5000 } });
		expect(await getPoint(pointId)).toMatchObject({ name: "苏州站北寄存", openHours: "06:00-23:00" });
		expect((await asAdmin("PATCH", `/points/${pointId}`, { merchantId: "mer_other" })).status).toBe(422);
		const nestedPatch = await asAdmin("PATCH", `/points/${pointId}`, { pricing: { M: { ...price, x: 1 } } });
		expect(nestedPatch.status).toBe(422);
		expect(fieldsOf(nestedPatch)).toEqual(["pricing.M.x"]);
		expect((await getPoint(pointId)).pricing.M).toEqual(DEFAULT_PRICING.M);

		// --- cabinets
		const cab = await asAdmin("POST", "/cabinets", { pointId, doors: [{ no: 2, size: "M" }, { no: 1, size: "S" }, { no: 3, size: "L" }, { no: 4, size: "M" }] });
		expect(cab.status).toBe(201);
		const cabinetId: string = cab.body.cabinet.id;
		expect(cab.body.credentials).toEqual({ username: cabinetId, password: expect.any(String) });
		expect(cab.body.credentials.password.length).toBeGreaterThanOrEqual(16);
		expect(JSON.stringify(cab.body.cabinet)).not.toContain(cab.body.credentials.password);
		expect((await getPoint(pointId)).available).toEqual({ S: 1, M: 2, L: 1 });

		const cabinetsBefore = await repoCount("cabinets");
		const badDoors: [string, unknown[]][] = [
			["duplicate numbers", [{ no: 1, size: "S" }, { no: 1, size: "M" }]],
			["numbers not 1..N", [{ no: 1, size: "S" }, { no: 3, size: "M" }]],
			["number 0", [{ no: 0, size: "S" }]],
			["size XL", [{ no: 1, size: "XL" }]],
			["an unknown door field", [{ no: 1, size: "S", color: "red" }]],
			["no doors", []],
		];
		for (const [why, doors] of badDoors) {
			const r = await asAdmin("POST", "/cabinets", { pointId, doors });
			expect({ why, status: r.status, type: r.body.type }).toEqual({ why, status: 422, type: "VALIDATION_ERROR" });
			expect(fieldsOf(r).every(f => f.startsWith("doors"))).toBe(true);
		}
		expect(await repoCount("cabinets")).toBe(cabinetsBefore);
		expect((await getPoint(pointId)).available).toEqual({ S: 1, M: 2, L: 1 });
		expect((await asAdmin("POST", "/cabinets", { pointId: "pt_missing", doors: doorsOf("S") })).status).toBe(404);

		const cabinet = await asAdmin("GET", `/cabinets/${cabinetId}`);
		expect(cabinet.status).toBe(200);
		expect(cabinet.body).toMatchObject({ id: cabinetId, pointId, merchantId, online: false, lastSeenAt: null });
		expect(cabinet.body.secretHash).toBeUndefined();
		expect(cabinet.body.doors).toEqual([1, 2, 3, 4].map(no => expect.objectContaining({ id: `${cabinetId}:0${no}`, no, state: "available", open: false, occupied: false })));
		expect(cabinet.body.doors.map((d: any) => d.size)).toEqual(["S", "M", "L", "M"]);

		// --- credentials: a new secret, the old one stops working
		const rotated = await asAdmin("POST", `/cabinets/${cabinetId}/credentials`);
		expect(rotated).toMatchObject({ status: 200, body: { username: cabinetId, password: expect.any(String) } });
		expect(rotated.body.password).not.toBe(cab.body.credentials.password);
		const broker = p.node.broker;
		expect(await broker.call("merchants.verifyCabinet", { username: cabinetId, password: rotated.body.password })).toMatchObject({ ok: true, cabinetId, pointId });
		expect(await broker.call("merchants.verifyCabinet", { username: cabinetId, password: cab.body.credentials.password })).toEqual({ ok: false });

		// --- doors
		const doorM = `${cabinetId}:02`; // door ids are canonical with two digits (PROTOCOL.md)
		const disabled = await asAdmin("PATCH", `/doors/${doorM}`, { disabled: true });
		expect(disabled).toMatchObject({ status: 200, body: { id: doorM, no: 2, size: "M", disabled: true } });
		const afterDisable = await asAdmin("GET", `/cabinets/${cabinetId}`);
		expect(afterDisable.body.doors.find((d: any) => d.id === doorM).state).toBe("disabled");
		expect(afterDisable.body.doors.filter((d: any) => d.state === "available")).toHaveLength(3);
		expect((await getPoint(pointId)).available).toEqual({ S: 1, M: 1, L: 1 });
		// Disabling again changes nothing.
		expect((await asAdmin("PATCH", `/doors/${doorM}`, { disabled: true })).status).toBe(200);
		expect((await getPoint(pointId)).available).toEqual({ S: 1, M: 1, L: 1 });
		expect(await asAdmin("PATCH", `/doors/${cabinetId}:9`, { disabled: true })).toMatchObject({ status: 404 });
		expect(await asAdmin("PATCH", "/doors/not-a-door", { disabled: true })).toMatchObject({ status: 422 });

		// --- remote open: the cabinet has never connected → 503 CABINET_OFFLINE, but the attempt is audited
		const doorL = `${cabinetId}:03`;
		const open = await asAdmin("POST", `/doors/${doorL}/open`, { reason: "客户遗忘物品，远程开门" });
		expect(open).toMatchObject({ status: 503, body: { code: 503, type: "CABINET_OFFLINE" } });
		expect(await audits(doorL)).toEqual([
			expect.objectContaining({ action: "door.open", targetType: "door", targetId: doorL, reason: "客户遗忘物品，远程开门", actorId: adminId }),
		]);
		// A missing reason is a 422, not audited.
		expect((await asAdmin("POST", `/doors/${doorL}/open`, {})).status).toBe(422);
		expect(await audits(doorL)).toHaveLength(1);

		// --- every admin change is in the audit log, by the admin
		const all = (await asAdmin("GET", "/admin/audit?pageSize=100")).body;
		expect(all.total).toBe(auditBefore + 7); // point.create, point.update, cabinet.register, rotate, door.disable ×2, door.open
		const mine = all.rows.filter((a: any) => [pointId, cabinetId, doorM, doorL].includes(a.targetId));
		expect(mine.map((a: any) => a.action).sort()).toEqual(
			["cabinet.credentials.rotate", "cabinet.register", "door.disable", "door.disable", "door.open", "point.create", "point.update"].sort(),
		);
		for (const a of mine) expect(a).toMatchObject({ actorId: adminId, actorRoles: ["admin"], at: expect.any(String) });
		expect(JSON.stringify(all.rows)).not.toContain(rotated.body.password);
		expect((await audits(merchantId)).map(a => a.action)).toEqual(["merchant.create"]);
		// Newest first.
		const times = all.rows.map((a: any) => Date.parse(a.at));
		expect([...times].sort((a, b) => b - a)).toEqual(times);
	});
});

// ---------------------------------------------------------------- 2. isolation

describe("isolation across roles", () => {
	let city: { code: string; lat: number; lng: number };
	let merA: string, merB: string;
	let tokA: string, tokOp: string, tokUser: string;
	let pointB: { id: string }, cabB: string, cabA: string;

	async function staff(username: string, roles: string[], merchantId?: string): Promise<string> {
		const password = "staff-secret-pass-9"; // must not contain the user name
		const r = await asAdmin("POST", "/admin/users", { username, password, roles, ...(merchantId ? { merchantId } : {}) });
		expect(r.status).toBe(201);
		const login = await call("POST", "/auth/login", { login: username, password });
		expect(login.status).toBe(200);
		return login.body.accessToken;
	}

	beforeAll(async () => {
		city = await createCity("隔离城");
		merA = await createMerchant("商户甲");
		merB = await createMerchant("商户乙");
		tokA = await staff("shop.a", ["merchant"], merA);
		await staff("shop.b", ["merchant"], merB);
		tokOp = await staff("ops.zhang", ["operator"]);
		const reg = await call("POST", "/auth/register", { phone: newPhone(), password: "plain-user-pass-1" });
		expect(reg.status).toBe(201);
		tokUser = reg.body.accessToken;
		pointB = await createPoint(merB, city.code, city.lat, city.lng);
		cabB = (await createCabinet(pointB.id, doorsOf("S", "M", "L"))).cabinet.id;
	});

	it("a merchant reads and changes only its own catalog", async () => {
		// Points: own yes, other merchant's no.
		const own = await createPoint(merA, city.code, city.lat + 0.01, city.lng, {}, tokA);
		const pointsBefore = await repoCount("points");
		expect(await call("POST", "/points", { merchantId: merB, cityCode: city.code, name: "冒名", address: "x", lat: city.lat, lng: city.lng }, tokA))
			.toMatchObject({ status: 403, body: { type: "FORBIDDEN" } });
		expect(await repoCount("points")).toBe(pointsBefore);

		expect((await call("PATCH", `/points/${own.id}`, { name: "甲的点" }, tokA)).status).toBe(200);
		expect(await call("PATCH", `/points/${pointB.id}`, { status: "disabled" }, tokA)).toMatchObject({ status: 403, body: { type: "FORBIDDEN" } });
		expect(await getPoint(pointB.id)).toMatchObject({ status: "active" });

		// Cabinets: own point yes, other's no.
		cabA = (await createCabinet(own.id, doorsOf("S", "L"), tokA)).cabinet.id;
		const cabinetsBefore = await repoCount("cabinets");
		expect(await call("POST", "/cabinets", { pointId: pointB.id, doors: doorsOf("S") }, tokA)).toMatchObject({ status: 403, body: { type: "FORBIDDEN" } });
		expect(await repoCount("cabinets")).toBe(cabinetsBefore);

		expect((await call("GET", `/cabinets/${cabA}`, undefined, tokA)).status).toBe(200);
		expect(await call("GET", `/cabinets/${cabB}`, undefined, tokA)).toMatchObject({ status: 403, body: { type: "FORBIDDEN" } });

		expect((await call("POST", `/cabinets/${cabA}/credentials`, undefined, tokA)).status).toBe(200);
		expect(await call("POST", `/cabinets/${cabB}/credentials`, undefined, tokA)).toMatchObject({ status: 403, body: { type: "FORBIDDEN" } });

		expect((await call("PATCH", `/doors/${cabA}:1`, { disabled: true }, tokA)).status).toBe(200);
		expect(await call("PATCH", `/doors/${cabB}:1`, { disabled: true }, tokA)).toMatchObject({ status: 403, body: { type: "FORBIDDEN" } });
		expect((await getPoint(pointB.id)).available).toEqual({ S: 1, M: 1, L: 1 });

		expect(await call("POST", `/doors/${cabB}:1/open`, { reason: "想看看里面" }, tokA)).toMatchObject({ status: 403, body: { type: "FORBIDDEN" } });
		expect(await audits(`${cabB}:01`)).toEqual([]);
		// Its own door: allowed as far as the catalog goes (the cabinet is offline → 503), and audited.
		expect((await call("POST", `/doors/${cabA}:2/open`, { reason: "本店员工开门" }, tokA)).status).toBe(503);
		expect(await audits(`${cabA}:02`)).toEqual([expect.objectContaining({ action: "door.open", actorRoles: ["merchant"] })]);

		expect(await call("GET", `/merchants/${merA}`, undefined, tokA)).toMatchObject({ status: 200, body: { id: merA } });
		expect(await call("GET", `/merchants/${merB}`, undefined, tokA)).toMatchObject({ status: 403, body: { type: "FORBIDDEN" } });

		// Admin-only routes stay closed.
		expect((await call("POST", "/merchants", { name: "x", contactPhone: "13800002222", commissionRate: 0 }, tokA)).status).toBe(403);
		expect((await call("GET", "/admin/audit", undefined, tokA)).status).toBe(403);
	});

	it("an operator sees every cabinet and manages doors, but does not edit the catalog", async () => {
		expect(await call("GET", `/cabinets/${cabB}`, undefined, tokOp)).toMatchObject({ status: 200, body: { id: cabB } });
		const pointsBefore = await repoCount("points");
		expect(await call("POST", "/points", { merchantId: merB, cityCode: city.code, name: "x", address: "y", lat: city.lat, lng: city.lng }, tokOp))
			.toMatchObject({ status: 403, body: { type: "FORBIDDEN" } });
		expect(await repoCount("points")).toBe(pointsBefore);

		expect(await call("PATCH", `/doors/${cabB}:3`, { disabled: true }, tokOp)).toMatchObject({ status: 200, body: { disabled: true } });
		expect((await getPoint(pointB.id)).available).toEqual({ S: 1, M: 1, L: 0 });
		expect((await call("PATCH", `/doors/${cabB}:3`, { disabled: false }, tokOp)).status).toBe(200);
		expect((await getPoint(pointB.id)).available).toEqual({ S: 1, M: 1, L: 1 });

		expect((await call("PATCH", `/points/${pointB.id}`, { name: "x" }, tokOp)).status).toBe(403);
		expect((await call("POST", "/cabinets", { pointId: pointB.id, doors: doorsOf("S") }, tokOp)).status).toBe(403);
		expect((await call("GET", `/merchants/${merB}`, undefined, tokOp)).status).toBe(403);
	});

	it("a plain user reads points only; no token is a 401", async () => {
		expect(await call("GET", `/points/${pointB.id}`, undefined, tokUser)).toMatchObject({ status: 200, body: { id: pointB.id } });
		expect(await call("POST", "/points", { merchantId: merB, cityCode: city.code, name: "x", address: "y", lat: city.lat, lng: city.lng }, tokUser))
			.toMatchObject({ status: 403, body: { type: "FORBIDDEN" } });
		expect(await call("GET", `/cabinets/${cabB}`, undefined, tokUser)).toMatchObject({ status: 403, body: { type: "FORBIDDEN" } });
		expect((await call("PATCH", `/doors/${cabB}:1`, { disabled: true }, tokUser)).status).toBe(403);

		expect(await call("POST", "/points", { merchantId: merB, cityCode: city.code, name: "x", address: "y", lat: city.lat, lng: city.lng }))
			.toMatchObject({ status: 401, body: { type: "UNAUTHORIZED" } });
		expect((await call("GET", `/cabinets/${cabB}`)).status).toBe(401);
		expect((await call("GET", `/points/${pointB.id}`)).status).toBe(200);
	});
});

// ---------------------------------------------------------------- 3. events → geo

describe("catalog events reach the geo index without a restart", () => {
	it("nearby, search and city points follow create, disable, enable and door changes", async () => {
		const city = await createCity("事件城");
		const merchantId = await createMerchant();
		const marker = `滨江${city.code}`; // unique text in the point's Chinese name
		const point = await createPoint(merchantId, city.code, city.lat + 0.002, city.lng + 0.002, { name: `${marker}码头寄存点`, address: "江滨路8号" });
		const cab = await createCabinet(point.id, doorsOf("S", "M", "L"));
		// A neighbour without an L door.
		const small = await createPoint(merchantId, city.code, city.lat + 0.004, city.lng, { name: `${marker}小站`, address: "江滨路10号" });
		await createCabinet(small.id, doorsOf("S", "S", "M"));

		const near = () => nearby(city.lat, city.lng, "&radius=3000");
		const nearL = () => nearby(city.lat, city.lng, "&radius=3000&size=L");
		const search = () => call("GET", `/points/search?q=${encodeURIComponent(`${marker}码头`)}`);
		const cityPts = () => call("GET", `/cities/${city.code}/points`);

		// Created points (with their cabinets) are found.
		const found = await eventually(near, r => r.status === 200 && ids(r).includes(point.id) && ids(r).includes(small.id) && r.body.rows.find((x: any) => x.id === point.id).available.L === 1, "point in nearby");
		// A list row carries the first-period price (of the cheapest size with a free door, or of `size`), not the tariff.
		const row = found.body.rows.find((x: any) => x.id === point.id);
		expect(row).toMatchObject({ name: `${marker}码头寄存点`, address: "江滨路8号", available: { S: 1, M: 1, L: 1 }, fromFen: Math.min(DEFAULT_PRICING.S.firstFen, DEFAULT_PRICING.M.firstFen, DEFAULT_PRICING.L.firstFen) });
		expect(row.pricing).toBeUndefined();
		expect((await nearL()).body.rows.find((x: any) => x.id === point.id).fromFen).toBe(DEFAULT_PRICING.L.firstFen);
		expect(ids(await eventually(nearL, r => ids(r).includes(point.id), "point in nearby size=L"))).not.toContain(small.id);
		expect(ids(await nearby(city.lat, city.lng, "&radius=3000&size=S"))).toEqual(expect.arrayContaining([point.id, small.id]));
		expect(ids(await eventually(search, r => ids(r).includes(point.id), "point in search"))).toEqual([point.id]);
		expect(ids(await call("GET", `/points/search?q=${encodeURIComponent(marker)}&city=${city.code}`)).sort()).toEqual([point.id, small.id].sort());
		expect(await call("GET", `/points/search?q=${encodeURIComponent(marker)}&city=QZZZZ`)).toMatchObject({ status: 404 });
		expect((await eventually(cityPts, r => r.body?.total === 2, "city points"))).toMatchObject({ status: 200, body: { total: 2 } });
		expect(ids(await cityPts()).sort()).toEqual([point.id, small.id].sort());

		// Disabled: gone everywhere.
		expect((await asAdmin("PATCH", `/points/${point.id}`, { status: "disabled" })).status).toBe(200);
		await eventually(near, r => r.status === 200 && !ids(r).includes(point.id), "point gone from nearby");
		expect(ids(await near())).toContain(small.id);
		expect(ids(await nearL())).not.toContain(point.id);
		expect(ids(await eventually(search, r => r.status === 200 && !ids(r).includes(point.id), "point gone from search"))).toEqual([]);
		expect(ids(await eventually(cityPts, r => r.body?.total === 1, "point gone from city points"))).toEqual([small.id]);
		expect(await cityPointsCount(city.code)).toBe(1);
		// Still readable directly, as disabled.
		expect(await getPoint(point.id)).toMatchObject({ status: "disabled" });

		// Enabled again: back everywhere.
		expect((await asAdmin("PATCH", `/points/${point.id}`, { status: "active" })).status).toBe(200);
		await eventually(near, r => ids(r).includes(point.id), "point back in nearby");
		expect(ids(await eventually(nearL, r => ids(r).includes(point.id), "point back in nearby size=L"))).toContain(point.id);
		expect(ids(await eventually(search, r => ids(r).includes(point.id), "point back in search"))).toEqual([point.id]);
		expect((await eventually(cityPts, r => r.body?.total === 2, "point back in city points")).body.total).toBe(2);
		expect(await cityPointsCount(city.code)).toBe(2);

		// The only L door disabled: no longer an L point; still a point.
		expect((await asAdmin("PATCH", `/doors/${cab.cabinet.id}:3`, { disabled: true })).status).toBe(200);
		await eventually(nearL, r => r.status === 200 && !ids(r).includes(point.id), "point gone from nearby size=L");
		const plain = await eventually(near, r => r.body?.rows?.find((x: any) => x.id === point.id)?.available.L === 0, "L count 0 in nearby");
		expect(plain.body.rows.find((x: any) => x.id === point.id).available).toEqual({ S: 1, M: 1, L: 0 });
		// …and back with the door.
		expect((await asAdmin("PATCH", `/doors/${cab.cabinet.id}:3`, { disabled: false })).status).toBe(200);
		await eventually(nearL, r => ids(r).includes(point.id), "point back in nearby size=L after enabling the door");

		// A moved point is found at its new place, not at the old one.
		const moved = await asAdmin("PATCH", `/points/${small.id}`, { lat: city.lat + 0.5, lng: city.lng + 0.5 });
		expect(moved.status).toBe(200);
		await eventually(near, r => r.status === 200 && !ids(r).includes(small.id), "moved point gone from its old place");
		await eventually(() => nearby(city.lat + 0.5, city.lng + 0.5, "&radius=500"), r => ids(r).includes(small.id), "moved point at its new place");
	});
});

// ---------------------------------------------------------------- 4. city map

describe("the city map adds up", () => {
	it("at every resolution 5–9 the cells sum to the city's active points and free doors", async () => {
		const city = await createCity("地图城");
		const merchantId = await createMerchant();
		const spots: [number, number][] = [
			[0, 0], [0.001, 0.001], [0.02, -0.03], [0.15, 0.2], [-0.3, 0.1], [0.4, -0.45], [0.0005, 0.0002],
		];
		const layouts: Size[][] = [["S", "M", "L"], ["S", "S"], ["M", "L", "L", "L"], ["S"], ["M", "M", "M", "M", "L"], ["L"], ["S", "M"]];
		const points: string[] = [];
		const checkMap = async (label: string) => {
			// The catalog's truth: active points of the city and their free doors.
			const list = await eventually(() => call("GET", `/cities/${city.code}/points?pageSize=100`), r => r.body?.total === activeIds().length, `${label}: city points`);
			expect(ids(list).sort()).toEqual(activeIds().sort());
			expect(await cityPointsCount(city.code)).toBe(activeIds().length);
			let doors = 0;
			for (const id of activeIds()) {
				const a = (await getPoint(id)).available;
				doors += a.S + a.M + a.L;
			}
			for (const res of [5, 6, 7, 8, 9]) {
				const map = await eventually(
					() => call("GET", `/cities/${city.code}/map?res=${res}`),
					r => r.status === 200 && sum(r.body.cells, "points") === activeIds().length && sum(r.body.cells, "availableDoors") === doors,
					`${label}: map at res ${res} sums to ${activeIds().length} points / ${doors} doors`,
					2000,
				);
				expect(map.body.res).toBe(res);
				for (const c of map.body.cells) {
					expect(h3.isValidCell(c.h3)).toBe(true);
					expect(h3.getResolution(c.h3)).toBe(res);
					expect(c.points).toBeGreaterThan(0);
				}
				expect(new Set(map.body.cells.map((c: any) => c.h3)).size).toBe(map.body.cells.length);
			}
		};
		const disabled = new Set<string>();
		const activeIds = () => points.filter(id => !disabled.has(id));
		const sum = (cells: any[], k: string) => cells.reduce((s, c) => s + c[k], 0);

		for (let i = 0; i < 4; i++) {
			const pt = await createPoint(merchantId, city.code, city.lat + spots[i][0], city.lng + spots[i][1]);
			await createCabinet(pt.id, layouts[i].map((size, j) => ({ no: j + 1, size })));
			points.push(pt.id);
		}
		await checkMap("first four points");

		// Changes after the map was read (and cached) are reflected too.
		const cabs: string[] = [];
		for (let i = 4; i < spots.length; i++) {
			const pt = await createPoint(merchantId, city.code, city.lat + spots[i][0], city.lng + spots[i][1]);
			cabs.push((await createCabinet(pt.id, layouts[i].map((size, j) => ({ no: j + 1, size })))).cabinet.id);
			points.push(pt.id);
		}
		// A point without a cabinet counts as a point with no free doors.
		points.push((await createPoint(merchantId, city.code, city.lat - 0.01, city.lng - 0.01)).id);
		await checkMap("all points");

		expect((await asAdmin("PATCH", `/points/${points[2]}`, { status: "disabled" })).status).toBe(200);
		disabled.add(points[2]);
		expect((await asAdmin("PATCH", `/doors/${cabs[0]}:5`, { disabled: true })).status).toBe(200);
		expect((await asAdmin("PATCH", `/points/${points[3]}`, { lat: city.lat + 0.6, lng: city.lng - 0.6 })).status).toBe(200);
		await checkMap("after a disable, a door change and a move");

		// Another city's map is unaffected; an unknown city is a 404.
		expect(await call("GET", "/cities/QZZZZ/map?res=7")).toMatchObject({ status: 404 });
		expect((await call("GET", `/cities/${city.code}/map?res=4`)).status).toBe(422);
		expect((await call("GET", `/cities/${city.code}/map`)).body.res).toBe(7);
	});
});

// ---------------------------------------------------------------- 5. nearby validation

describe("nearby", () => {
	it("validates its input", async () => {
		const bad: [string, string][] = [
			["lat=31&lng=121&radius=50001", "radius"],
			["lng=121", "lat"],
			["lat=31", "lng"],
			["lat=91&lng=121", "lat"],
			["lat=abc&lng=121", "lat"],
			["lat=31&lng=121&radius=0", "radius"],
			["lat=31&lng=121&size=XL", "size"],
			["lat=31&lng=121&limit=0", "limit"],
			["lat=31&lng=121&limit=101", "limit"],
		];
		for (const [q, field] of bad) {
			const r = await call("GET", `/points/nearby?${q}`);
			expect({ q, status: r.status, type: r.body.type }).toEqual({ q, status: 422, type: "VALIDATION_ERROR" });
			expect(fieldsOf(r)).toContain(field);
		}
		expect((await call("GET", "/points/nearby?lat=31&lng=121&radius=50000")).status).toBe(200);
	});

	it("answers nearest first with integer metre distances, within the radius and the limit", async () => {
		const city = await createCity("距离城");
		const merchantId = await createMerchant();
		// Points due north of the origin at known distances (1° of latitude ≈ 111 195 m).
		const offsets = [2500, 300, 1200, 4000, 50, 800, 6000];
		const made: { id: string; d: number }[] = [];
		for (const d of offsets) {
			const pt = await createPoint(merchantId, city.code, city.lat + d / 111_195, city.lng);
			await createCabinet(pt.id, doorsOf("M"));
			made.push({ id: pt.id, d });
		}
		const expected = [...made].sort((a, b) => a.d - b.d);

		const all = await eventually(() => nearby(city.lat, city.lng, "&radius=5000&limit=100"), r => r.body?.rows?.length === 6, "six points within 5 km");
		expect(ids(all)).toEqual(expected.filter(m => m.d <= 5000).map(m => m.id));
		for (const [i, row] of all.body.rows.entries()) {
			expect(Number.isInteger(row.distance)).toBe(true);
			expect(Math.abs(row.distance - expected[i].d)).toBeLessThanOrEqual(15);
			if (i > 0) expect(row.distance).toBeGreaterThanOrEqual(all.body.rows[i - 1].distance);
			expect(row).toMatchObject({ available: { S: 0, M: 1, L: 0 }, fromFen: DEFAULT_PRICING.M.firstFen });
			expect(Object.keys(row)).toEqual(["id", "name", "address", "lat", "lng", "distance", "available", "fromFen"]);
		}

		const three = await nearby(city.lat, city.lng, "&radius=5000&limit=3");
		expect(ids(three)).toEqual(expected.slice(0, 3).map(m => m.id));

		// The default radius is 2000 m.
		expect(ids(await nearby(city.lat, city.lng))).toEqual(expected.filter(m => m.d <= 2000).map(m => m.id));
		expect(ids(await nearby(city.lat, city.lng, "&radius=10000&limit=100"))).toEqual(expected.map(m => m.id));
		// From a slightly different spot the same cached candidates still give the exact answer.
		const from = await nearby(city.lat + 700 / 111_195, city.lng, "&radius=1000&limit=2");
		expect(ids(from)).toEqual([made[5].id, made[1].id]); // 800 m → 100 m away, 300 m → 400 m away
	});
});
