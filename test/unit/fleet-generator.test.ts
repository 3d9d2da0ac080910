import { hashCabinetSecret } from "../../domain/cabinet-secrets";
import {
	distanceKm, fleetDate, generateFleet, generateFleetChunks, generatePoints, HOT_CITIES, mulberry32, type FleetOptions,
} from "../../services/merchants/fleet-generator";
import { enabledDoorCounts, parseDoorId, doorId } from "../../services/merchants/model";
import { DEFAULT_PRICING } from "../../domain/catalog";

const OPTS: FleetOptions = { points: 3000, cities: 5, doorsPerCabinet: 24, seed: 7, cabinetSecretKey: "test-key" };
const fleet = generateFleet(OPTS);
const cityOf = new Map(HOT_CITIES.map(c => [c.code, c]));

describe("HOT_CITIES", () => {
	it("are the five hot cities with 4–8 sub-centres each, all near their centre", () => {
		expect(HOT_CITIES.map(c => c.code)).toEqual(["BJ", "SH", "GZ", "SZ", "HZ"]);
		expect(HOT_CITIES.map(c => c.name)).toEqual(["北京", "上海", "广州", "深圳", "杭州"]);
		for (const c of HOT_CITIES) {
			expect(c.subCentres.length).toBeGreaterThanOrEqual(4);
			expect(c.subCentres.length).toBeLessThanOrEqual(8);
			for (const s of c.subCentres) {
				expect(distanceKm(c, s)).toBeLessThan(32);
				expect(s.sigmaKm).toBeGreaterThanOrEqual(1);
				expect(s.sigmaKm).toBeLessThanOrEqual(4);
				expect(s.roads.length).toBeGreaterThan(0);
			}
		}
	});
});

describe("generateFleet", () => {
	it("is deterministic: same seed, same ids, places and names; another seed, other ones", () => {
		const again = generateFleet(OPTS);
		const shape = (f: typeof fleet) => ({
			cities: f.cities,
			merchants: f.merchants,
			points: f.points,
			cabinets: f.cabinets.map(({ secretHash: _, secretNonce: __, ...rest }) => rest),
		});
		// Strings: a deep comparison of 80 000 doors is slow in Jest.
		expect(JSON.stringify(shape(again))).toBe(JSON.stringify(shape(fleet)));
		const other = generateFleet({ ...OPTS, seed: 8 });
		expect(other.points[0]._id).not.toBe(fleet.points[0]._id);
		expect(other.points[0].lat).not.toBe(fleet.points[0].lat);
	});

	it("does not depend on the chunk size, and puts cities and merchants in the first chunk", () => {
		const chunks = [...generateFleetChunks(OPTS, 700)];
		expect(chunks.map(c => c.points.length)).toEqual([700, 700, 700, 700, 200]);
		expect(chunks[0].cities).toHaveLength(5);
		expect(chunks[0].merchants.length).toBeGreaterThan(0);
		expect(chunks.slice(1).every(c => c.cities.length === 0 && c.merchants.length === 0)).toBe(true);
		expect(chunks.flatMap(c => c.points.map(p => p._id))).toEqual(fleet.points.map(p => p._id));
		expect(chunks.flatMap(c => c.cabinets.map(x => x._id))).toEqual(fleet.cabinets.map(x => x._id));
		for (const c of chunks) expect(c.secrets.map(s => s.cabinetId)).toEqual(c.cabinets.map(x => x._id));
	});

	it("makes the cities and merchants as specified", () => {
		expect(fleet.cities.map(c => c._id)).toEqual(["BJ", "SH", "GZ", "SZ", "HZ"]);
		expect(fleet.cities[1]).toEqual({ _id: "SH", name: "上海", lat: 31.2304, lng: 121.4737, createdAt: fleetDate(7) });
		expect(fleet.merchants).toHaveLength(Math.max(5, 3000 / 200));
		for (const m of fleet.merchants) {
			expect(m._id).toMatch(/^mer_[A-Za-z0-9_-]{16}$/);
			expect(m.commissionRate).toBeGreaterThanOrEqual(0.1);
			expect(m.commissionRate).toBeLessThanOrEqual(0.3);
			expect(Math.round(m.commissionRate * 100)).toBeCloseTo(m.commissionRate * 100, 9);
			expect(m.contactPhone).toMatch(/^1380013\d{4}$/);
		}
		expect(new Set(fleet.merchants.map(m => m.name)).size).toBe(fleet.merchants.length);
		expect(generateFleet({ ...OPTS, points: 10, merchants: 3 }).merchants).toHaveLength(3);
	});

	it("only uses the first N cities", () => {
		const two = generateFleet({ ...OPTS, points: 500, cities: 2 });
		expect(two.cities.map(c => c._id)).toEqual(["BJ", "SH"]);
		expect(new Set(two.points.map(p => p.cityCode))).toEqual(new Set(["BJ", "SH"]));
	});

	it("puts every point within 40 km of its city centre, most of them in clusters", () => {
		let within5 = 0;
		const far: string[] = [];
		for (const p of fleet.points) {
			const city = cityOf.get(p.cityCode)!;
			if (distanceKm(city, p) >= 40) far.push(p._id);
			if (city.subCentres.some(s => distanceKm(s, p) < 5)) within5++;
		}
		expect(far).toEqual([]);
		// ≈80 % clustered (nearly all within 2.5 σ ≤ 10 km, most within 5 km) plus some spread ones that land near a centre.
		expect(within5 / fleet.points.length).toBeGreaterThan(0.7);
		// Every city gets points.
		expect(new Set(fleet.points.map(p => p.cityCode)).size).toBe(5);
	});

	it("makes well-formed points: ids, names, merchants, pricing, status, version, dates", () => {
		const merchantIds = new Set(fleet.merchants.map(m => m._id));
		const pricing = JSON.stringify(DEFAULT_PRICING);
		const at = fleetDate(7).getTime();
		const bad = fleet.points.filter(p =>
			!/^pt_[A-Za-z0-9_-]{16}$/.test(p._id) || !merchantIds.has(p.merchantId) || !/ #\d+$/.test(p.name) ||
			!/ \d+ 号/.test(p.address) || JSON.stringify(p.pricing) !== pricing || p.version !== 1 ||
			p.createdAt.getTime() !== at || p.updatedAt.getTime() !== at || !["active", "disabled"].includes(p.status));
		expect(bad).toEqual([]);
		const disabled = fleet.points.filter(p => p.status === "disabled").length;
		expect(new Set(fleet.points.map(p => p._id)).size).toBe(fleet.points.length);
		expect(disabled / fleet.points.length).toBeLessThan(0.05);
		expect(new Set(fleet.points.map(p => p.name)).size).toBe(fleet.points.length);
	});

	it("keeps money in integer fen", () => {
		const amounts = fleet.points.flatMap(p => Object.values(p.pricing).flatMap(price => Object.values(price)));
		expect(amounts.length).toBe(fleet.points.length * 12);
		expect(amounts.filter(v => !Number.isInteger(v) || v <= 0)).toEqual([]);
	});

	it("gives each point one cabinet (about every 10th two) with doors 1..N and point.doors = its enabled doors", () => {
		const byPoint = new Map<string, typeof fleet.cabinets>();
		for (const c of fleet.cabinets) byPoint.set(c.pointId, [...(byPoint.get(c.pointId) ?? []), c]);
		expect(byPoint.size).toBe(fleet.points.length);
		const twos = [...byPoint.values()].filter(cs => cs.length === 2).length;
		expect(twos / fleet.points.length).toBeGreaterThan(0.06);
		expect(twos / fleet.points.length).toBeLessThan(0.14);
		expect([...byPoint.values()].every(cs => cs.length <= 2)).toBe(true);

		const size = { S: 0, M: 0, L: 0 };
		let doors = 0;
		let off = 0;
		const cabinetIds = new Set<string>();
		const numbering = JSON.stringify(Array.from({ length: 24 }, (_, i) => i + 1));
		const problems: string[] = [];
		for (const p of fleet.points) {
			const cabinets = byPoint.get(p._id)!;
			if (JSON.stringify(p.doors) !== JSON.stringify(enabledDoorCounts(cabinets))) problems.push(`${p._id}: doors`);
			for (const c of cabinets) {
				cabinetIds.add(c._id);
				if (!/^cab_[A-Za-z0-9_-]{16}$/.test(c._id) || parseDoorId(doorId(c._id, 24))?.cabinetId !== c._id) problems.push(`${c._id}: id`);
				if (c.merchantId !== p.merchantId || c.version !== 1 || !/^[0-9a-f]{64}$/.test(c.secretHash)) problems.push(`${c._id}: fields`);
				if (JSON.stringify(c.doors.map(d => d.no)) !== numbering) problems.push(`${c._id}: numbering`);
				for (const d of c.doors) {
					size[d.size]++;
					doors++;
					if (d.disabled) off++;
				}
			}
		}
		expect(problems).toEqual([]);
		expect(cabinetIds.size).toBe(fleet.cabinets.length);
		expect(size.S / doors).toBeCloseTo(0.5, 1);
		expect(size.M / doors).toBeCloseTo(0.35, 1);
		expect(size.L / doors).toBeCloseTo(0.15, 1);
		expect(off / doors).toBeGreaterThan(0.01);
		expect(off / doors).toBeLessThan(0.03);
	});

	it("numbers doors 1..N for any N and mixes sizes even in small cabinets", () => {
		for (const n of [1, 2, 5, 12]) {
			const f = generateFleet({ points: 300, cities: 1, doorsPerCabinet: n, seed: n, cabinetSecretKey: "test-key" });
			for (const c of f.cabinets) expect(c.doors.map(d => d.no)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
			if (n >= 5) expect(new Set(f.cabinets.flatMap(c => c.doors.map(d => d.size)))).toEqual(new Set(["S", "M", "L"]));
		}
	});

	it("hands out each cabinet's secret once (random, not from the seed), storing only its hash", () => {
		const again = generateFleet({ ...OPTS, points: 20 });
		const first = generateFleet({ ...OPTS, points: 20 });
		expect(again.cabinets[0]._id).toBe(first.cabinets[0]._id);
		expect(again.secrets[0].password).not.toBe(first.secrets[0].password);
		for (const [i, s] of first.secrets.entries()) {
			const cabinet = first.cabinets[i];
			expect(s).toMatchObject({ cabinetId: cabinet._id, username: cabinet._id, pointId: cabinet.pointId });
			expect(hashCabinetSecret(s.password)).toBe(cabinet.secretHash);
			expect(s.doors).toEqual(cabinet.doors.map(d => ({ no: d.no, size: d.size })));
			expect(JSON.stringify(cabinet)).not.toContain(s.password);
		}
	});

	it("rejects impossible options", () => {
		expect(() => generateFleet({ ...OPTS, cities: 6 })).toThrow(RangeError);
		expect(() => generateFleet({ ...OPTS, cities: 0 })).toThrow(RangeError);
		expect(() => generateFleet({ ...OPTS, doorsPerCabinet: 0 })).toThrow(RangeError);
		expect(() => generateFleet({ ...OPTS, points: -1 })).toThrow(RangeError);
	});
});

describe("generatePoints", () => {
	it("gives the requested count from the same distribution, the very points of the fleet with that seed", () => {
		const pts = generatePoints(3000, 7);
		expect(pts).toHaveLength(3000);
		expect(pts.map(p => p.id)).toEqual(fleet.points.map(p => p._id));
		expect(pts.map(p => [p.lat, p.lng, p.cityCode])).toEqual(fleet.points.map(p => [p.lat, p.lng, p.cityCode]));
		expect(Object.keys(pts[0]).sort()).toEqual(["cityCode", "id", "lat", "lng"]);
		expect(generatePoints(0, 7)).toEqual([]);
	});

	it("makes 100 000 distinct points, all near their city", () => {
		const pts = generatePoints(100_000, 42);
		expect(pts).toHaveLength(100_000);
		expect(new Set(pts.map(p => p.id)).size).toBe(100_000);
		expect(pts.filter(p => distanceKm(cityOf.get(p.cityCode)!, p) >= 40)).toEqual([]);
		expect(generatePoints(10, 42)).toEqual(pts.slice(0, 10));
	});
});

describe("mulberry32", () => {
	it("is repeatable and roughly uniform", () => {
		const a = mulberry32(1);
		const b = mulberry32(1);
		const xs = Array.from({ length: 10_000 }, () => a());
		expect(xs.slice(0, 5)).toEqual(Array.from({ length: 5 }, () => b()));
		expect(xs.every(x => x >= 0 && x < 1)).toBe(true);
		expect(xs.reduce((s, x) => s + x, 0) / xs.length).toBeCloseTo(0.5, 1);
	});
});
