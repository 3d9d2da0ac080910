import { fromFenOf, type NearbyCandidate } from "../../services/geo/read-model";
import { encodeNearby } from "../../services/geo/nearby-json";
import { answerFrom, candidatesFor, candidateSet, nearbyKey, NearbyCache, staleRegions } from "../../services/geo/nearby-cache";
import { bruteForceNearby, PointIndex, unitVector, type GeoPoint } from "../../services/geo/point-index";
import { generatePoints } from "../../services/merchants/fleet-generator";

describe("nearby cache keys and candidate sets", () => {
	const points: GeoPoint[] = generatePoints(20_000, 7).map(p => ({ id: p.id, lat: p.lat, lng: p.lng }));
	const index = new PointIndex<GeoPoint>(8);
	for (const p of points) index.upsert(p);
	const nearby = (lat: number, lng: number, radius: number, limit: number) => index.nearby({ lat, lng, radius, limit });
	const placed = (p: GeoPoint) => {
		const [x, y, z] = unitVector(p.lat, p.lng);
		return { ...p, x, y, z };
	};

	it("answers every caller in a key's cell exactly like brute force, from one candidate set", () => {
		let rnd = 12345;
		const next = () => ((rnd = (rnd * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
		let compared = 0;
		for (let i = 0; i < 200; i++) {
			const base = points[Math.floor(next() * points.length)];
			const radius = [500, 2_000, 5_000, 50_000][i % 4];
			const limit = [1, 20, 100][i % 3];
			const key = nearbyKey(base.lat, base.lng, radius, undefined, limit);
			const set = candidateSet(candidatesFor(key, radius, limit, nearby), placed);
			// Several callers standing anywhere in the same key cell (≈ 1 km across) share the candidate set.
			for (let j = 0; j < 4; j++) {
				const lat = base.lat + (next() - 0.5) * 0.01;
				const lng = base.lng + (next() - 0.5) * 0.01;
				if (nearbyKey(lat, lng, radius, undefined, limit).key !== key.key) continue;
				// Ids and distances, bit for bit.
				const got = answerFrom(set, key, lat, lng, radius, limit).map(h => `${h.point.id}@${h.distance}`).join(",");
				const want = bruteForceNearby(points, { lat, lng, radius, limit }).map(h => `${h.point.id}@${h.distance}`).join(",");
				compared++;
				if (got !== want) expect({ i, j, got }).toEqual({ i, j, got: want });
			}
		}
		expect(compared).toBeGreaterThan(300); // most callers fell in the key's cell
	});

	it("normalises the key: callers a few metres apart share it, the filters are part of it", () => {
		const a = nearbyKey(31.2304, 121.4737, 2000, "M", 20);
		expect(nearbyKey(31.23041, 121.47371, 2000, "M", 20).key).toBe(a.key);
		expect(nearbyKey(31.2304, 121.4737, 5000, "M", 20).key).not.toBe(a.key);
		expect(nearbyKey(31.2304, 121.4737, 2000, undefined, 20).key).not.toBe(a.key);
	});

	it("a change makes stale the region of every key whose answer it could touch (radius ≤ 50 km)", () => {
		const change = { lat: 31.2304, lng: 121.4737 };
		const regions = staleRegions(change.lat, change.lng);
		// Callers up to 50 km away in every direction.
		for (let deg = 0; deg < 360; deg += 15) {
			const rad = (deg * Math.PI) / 180;
			const lat = change.lat + (50_000 * Math.cos(rad)) / 111_320;
			const lng = change.lng + (50_000 * Math.sin(rad)) / (111_320 * Math.cos((change.lat * Math.PI) / 180));
			expect(regions).toContain(nearbyKey(lat, lng, 50_000, undefined, 20).region);
		}
	});
});

describe("a replica's nearby cache", () => {
	const set = { points: [], fromCentre: new Float64Array(0) };
	it("serves a set until a change nearby makes its region stale; changes far away leave it", () => {
		const cache = new NearbyCache<never>(100, 1000);
		const key = nearbyKey(31.2304, 121.4737, 2000, undefined, 20);
		cache.set(key, set);
		expect(cache.get(key)).toBe(set);
		cache.changedAt(39.9042, 116.4074); // Beijing
		expect(cache.get(key)).toBe(set);
		cache.changedAt(31.30, 121.50); // a few km off
		expect(cache.get(key)).toBeUndefined();
		cache.set(key, set); // computed again after the change
		expect(cache.get(key)).toBe(set);
	});

	it("a door change makes stale only the sets of the sizes it decides", () => {
		const cache = new NearbyCache<never>(100, 1000);
		const any = nearbyKey(31.2304, 121.4737, 2000, undefined, 20);
		const m = nearbyKey(31.2304, 121.4737, 2000, "M", 20);
		const l = nearbyKey(31.2304, 121.4737, 2000, "L", 20);
		for (const k of [any, m, l]) cache.set(k, set);
		cache.changedAt(31.231, 121.474, ["M"]); // a point's last free M door was taken
		expect([any, m, l].map(k => cache.get(k) === set)).toEqual([true, false, true]);
		cache.changedAt(31.231, 121.474); // the point itself changed: every filter
		expect([any, l].map(k => cache.get(k) === set)).toEqual([false, false]);
	});

	it("is bounded by the candidates it holds, least recently used out first", () => {
		const cache = new NearbyCache<{ id: string }>(100, 25);
		const ten = { points: Array.from({ length: 10 }, (_, i) => ({ id: `p${i}` })), fromCentre: new Float64Array(10) };
		const keys = [0, 1, 2].map(i => nearbyKey(31.2304 + i * 0.05, 121.4737, 2000, undefined, 20));
		for (const k of keys) cache.set(k, ten);
		expect(keys.map(k => cache.get(k) !== undefined)).toEqual([false, true, true]);
	});
});

describe("a nearby row's price", () => {
	const c = { available: { S: 0, M: 2, L: 1 }, firstFen: { S: 500, M: 800, L: 1200 } };
	it("is the first-period price of the size asked for, or of the cheapest size with a free door", () => {
		expect(fromFenOf(c, "S")).toBe(500);
		expect(fromFenOf(c, "L")).toBe(1200);
		expect(fromFenOf(c, undefined)).toBe(800);
		expect(fromFenOf({ ...c, available: { S: 0, M: 0, L: 0 } }, undefined)).toBeNull();
	});
});

/** A row of GET /points/nearby as API.md lists its fields, in that order: what the encoder must equal. */
const rowOf = (c: NearbyCandidate, distance: number, size: "S" | "M" | "L" | undefined) =>
	({ id: c.id, name: c.name, address: c.address, lat: c.lat, lng: c.lng, distance: Math.round(distance), available: c.available, fromFen: fromFenOf(c, size) });

describe("a nearby answer's JSON", () => {
	it("is byte for byte JSON.stringify of the rows, also for text that needs escaping, and the same when fragments are reused", () => {
		const cands: NearbyCandidate[] = [
			{ id: "pt_a", name: "上海 \"人民广场\" 寄存点\n#1", address: "黄浦区 \\ 福州路 10 号 \u2028", lat: 31.230087, lng: 121.469684, available: { S: 3, M: 0, L: 1 }, firstFen: { S: 500, M: 800, L: 1200 }, x: 0, y: 0, z: 1 },
			{ id: "pt_b", name: "B", address: "", lat: -0.5, lng: 1e-7, available: { S: 0, M: 0, L: 0 }, firstFen: { S: 1, M: 2, L: 3 }, x: 1, y: 0, z: 0 },
		];
		const hits = [{ point: cands[0], distance: 12.5 }, { point: cands[1], distance: 4000.49 }];
		for (const size of [undefined, "S", "M", "L"] as const) {
			const expected = JSON.stringify({ rows: hits.map(h => rowOf(h.point, h.distance, size)) });
			expect(encodeNearby(hits, size).toString("utf8")).toBe(expected);
			expect(encodeNearby(hits, size).toString("utf8")).toBe(expected);
		}
		expect(encodeNearby([], undefined).toString("utf8")).toBe('{"rows":[]}');
		// Free doors (and the price shown) as they are now, not as the candidate was cached.
		const now = { S: 0, M: 0, L: 4 };
		const live = encodeNearby(hits, undefined, id => (id === "pt_a" ? now : undefined)).toString("utf8");
		expect(live).toBe(JSON.stringify({ rows: [{ ...rowOf(cands[0], 12.5, undefined), available: now, fromFen: 1200 }, rowOf(cands[1], 4000.49, undefined)] }));
	});
});
