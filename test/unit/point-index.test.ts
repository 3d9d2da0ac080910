import * as h3 from "h3-js";
import { bruteForceNearby, chooseResolution, greatCircleDistance, PointIndex, type GeoPoint } from "../../services/geo/point-index";

interface P extends GeoPoint {
	free: number;
}

/** Deterministic PRNG so a failure can be replayed. */
function mulberry32(seed: number) {
	return () => {
		seed |= 0;
		seed = (seed + 0x6d2b79f5) | 0;
		let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
		t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
		return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
	};
}

const wrapLng = (lng: number) => ((((lng + 180) % 360) + 360) % 360) - 180;
const clampLat = (lat: number) => Math.max(-89.999999, Math.min(89.999999, lat));

/** Places people look for lockers, plus the places h3 documents as awkward. */
function hotspots(): [number, number][] {
	const pentagons = h3.getPentagons(7).map(c => h3.cellToLatLng(c));
	return [
		[31.2304, 121.4737], // Shanghai
		[39.9042, 116.4074], // Beijing
		[22.5431, 114.0579], // Shenzhen
		[-16.5, 179.99], // Fiji, on the antimeridian
		[65.0, -179.98], // Chukotka side of the antimeridian
		[89.95, 10], // next to the north pole
		[-89.95, -120], // next to the south pole
		...pentagons.slice(0, 4),
	];
}

function randomNear(rnd: () => number, [lat, lng]: [number, number], spreadM: number): [number, number] {
	const r = spreadM * Math.sqrt(rnd());
	const theta = rnd() * 2 * Math.PI;
	const dLat = (r * Math.cos(theta)) / 111_320;
	const dLng = (r * Math.sin(theta)) / (111_320 * Math.max(0.01, Math.cos((lat * Math.PI) / 180)));
	return [clampLat(lat + dLat), wrapLng(lng + dLng)];
}

describe("PointIndex", () => {
	const rnd = mulberry32(20261122);
	const spots = hotspots();
	const points: P[] = [];
	for (let i = 0; i < 10_000; i++) {
		const [lat, lng] = randomNear(rnd, spots[i % spots.length], rnd() < 0.8 ? 8_000 : 60_000);
		points.push({ id: `p${i}`, lat, lng, free: Math.floor(rnd() * 3) });
	}
	// Exact duplicates and equal distances: the id must break the tie the same way.
	points.push({ ...points[0], id: "dup-a" }, { ...points[0], id: "dup-b" });

	it.each([7, 8, 9])("answers exactly like brute force at resolution %i (1 000 random queries, several radii and limits)", res => {
		const index = new PointIndex<P>(res);
		for (const p of points) index.upsert(p);
		const radii = [500, 2_000, 5_000, 50_000];
		const limits = [1, 20, 100, Infinity];
		for (let i = 0; i < 1_000; i++) {
			const [lat, lng] = randomNear(rnd, spots[i % spots.length], rnd() < 0.7 ? 10_000 : 70_000);
			const radius = radii[i % radii.length];
			const limit = limits[Math.floor(i / radii.length) % limits.length];
			const filter = i % 3 === 0 ? (p: P) => p.free > 0 : undefined;
			const q = { lat, lng, radius, limit, filter };
			const got = index.nearby(q).map(h => h.point.id).join(",");
			const want = bruteForceNearby(points, q).map(h => h.point.id).join(",");
			if (got !== want) expect({ i, q: { lat, lng, radius, limit }, got }).toEqual({ i, q: { lat, lng, radius, limit }, got: want });
		}
	});

	it("finds a point added or moved without a rebuild, and forgets a removed one", () => {
		const index = new PointIndex<P>(9);
		const p = { id: "x", lat: 31.2304, lng: 121.4737, free: 1 };
		index.upsert(p);
		expect(index.nearby({ lat: 31.2305, lng: 121.4737, radius: 100, limit: 5 }).map(h => h.point.id)).toEqual(["x"]);
		index.upsert({ ...p, lat: 31.3 }); // moved ~7.7 km north
		expect(index.nearby({ lat: 31.2305, lng: 121.4737, radius: 1_000, limit: 5 })).toEqual([]);
		expect(index.nearby({ lat: 31.3, lng: 121.4737, radius: 10, limit: 5 })).toHaveLength(1);
		expect(index.remove("x")).toBe(true);
		expect(index.size).toBe(0);
		expect(index.cellCount).toBe(0);
		expect(index.nearby({ lat: 31.3, lng: 121.4737, radius: 10, limit: 5 })).toEqual([]);
	});

	it("stays exact through packing, moves, changes in place, removals and additions", () => {
		const index = new PointIndex<P>(8);
		const live = new Map(points.map(p => [p.id, p]));
		for (const p of points) index.upsert(p);
		index.pack();
		const expectExact = (queries: number) => {
			for (let i = 0; i < queries; i++) {
				const [lat, lng] = randomNear(rnd, spots[i % spots.length], 12_000);
				const q = { lat, lng, radius: [500, 5_000, 50_000][i % 3], limit: [20, Infinity][i % 2], filter: i % 4 === 0 ? (p: P) => p.free > 0 : undefined };
				const got = index.nearby(q).map(h => `${h.point.id}:${h.point.free}`).join(",");
				const want = bruteForceNearby(live.values(), q).map(h => `${h.point.id}:${h.point.free}`).join(",");
				if (got !== want) expect({ i, got }).toEqual({ i, got: want });
			}
		};
		const ids = [...live.keys()];
		for (let i = 0; i < 3_000; i++) {
			const id = ids[Math.floor(rnd() * ids.length)];
			const p = live.get(id);
			if (!p) continue;
			const action = i % 3;
			if (action === 0) {
				index.remove(id);
				live.delete(id);
			} else {
				const [lat, lng] = action === 1 ? randomNear(rnd, [p.lat, p.lng], 3_000) : [p.lat, p.lng];
				const changed = { ...p, lat, lng, free: (p.free + 1) % 3 };
				index.upsert(changed);
				live.set(id, changed);
			}
		}
		for (let i = 0; i < 500; i++) {
			const [lat, lng] = randomNear(rnd, spots[i % spots.length], 8_000);
			const p = { id: `new${i}`, lat, lng, free: i % 3 };
			index.upsert(p);
			live.set(p.id, p);
		}
		expect(index.size).toBe(live.size);
		expectExact(300); // packed layer with holes, plus loose points
		index.pack();
		expectExact(300);
		expect([...index.points()].length).toBe(live.size);
	});

	it("reports exact great-circle distances, nearest first", () => {
		const index = new PointIndex<P>(8);
		for (const p of points) index.upsert(p);
		const hits = index.nearby({ lat: 31.2304, lng: 121.4737, radius: 5_000, limit: 50 });
		expect(hits.length).toBe(50);
		for (const h of hits) expect(h.distance).toBe(greatCircleDistance(31.2304, 121.4737, h.point.lat, h.point.lng));
		for (let i = 1; i < hits.length; i++) expect(hits[i].distance).toBeGreaterThanOrEqual(hits[i - 1].distance);
	});

	it("measures distance across the antimeridian the short way", () => {
		expect(greatCircleDistance(0, 179.999, 0, -179.999)).toBeCloseTo(222.4, 0);
	});

	it("chooses a finer resolution for denser data", () => {
		const dense = Array.from({ length: 20_000 }, () => randomNear(rnd, [31.23, 121.47], 3_000)).map(([lat, lng]) => ({ lat, lng }));
		const sparse = Array.from({ length: 2_000 }, () => randomNear(rnd, [31.23, 121.47], 100_000)).map(([lat, lng]) => ({ lat, lng }));
		expect(chooseResolution(dense)).toBeGreaterThan(chooseResolution(sparse));
	});
});
