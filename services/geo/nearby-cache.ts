/**
 * The nearby cache — pure, no broker.
 *
 * Callers stand anywhere, so the exact position cannot be a key. The key is
 * the caller's H3 cell at resolution 8 (≈ 0.7 km², about what one station
 * square or sight covers: measured with the benchmark's callers, 77 % of a
 * pass's requests share a key, against 62 % at resolution 9) plus radius, size
 * filter and limit; the cached value is the *candidate set* computed from the
 * cell's centre c, and the exact answer for the caller q is derived from it per
 * request. The candidate set is every point within min(R + δ, d_k(c) + 2δ) of
 * c, where δ bounds |qc| (the cell's reach) and d_k(c) is the k-th distance
 * from c among points within R + δ. Proof that nothing is missed: a point p of
 * q's answer is within R of q, so within R + δ of c; if d(c,p) > d_k(c) + 2δ,
 * then d(q,p) > d_k(c) + δ, and c's k nearest are all within d_k(c) + δ of q —
 * k points nearer than p, all within R of q — so p would not be in q's answer.
 *
 * The set is kept nearest to c first, with those distances: q's answer reads
 * it only while d(c,p) − |qc| (a lower bound of d(q,p)) can still beat the k-th
 * best so far, keeping the best k as it goes — near a station, where a set
 * holds a thousand points, an answer reads a few hundred and sorts none.
 *
 * Each replica keeps its own cache (in memory, bounded): every replica holds
 * the whole read model, so a set costs it a few hundred microseconds to
 * compute, less than fetching and parsing one from Redis. A change at a point
 * can only affect keys in its resolution-3 cell (edge ≈ 60 km) and the ring
 * around it (radius ≤ 50 km): it moves those regions to a new generation, and
 * entries of an older generation are misses (the LRU drops them in time).
 */
import * as h3 from "h3-js";
import { LRUCache } from "lru-cache";
import { cellGeometry, distanceFromChord2, unitVector, type CellGeo, type NearbyHit } from "./point-index";

export const KEY_RES = 8;
export const REGION_RES = 3;

export interface NearbyKey {
	key: string;
	/** The caller's resolution-3 cell: what a change cleans. */
	region: string;
	/** The size filter, or "any": a door change only touches the sets of the sizes it decides. */
	filter: string;
	centerLat: number;
	centerLng: number;
	/** Farthest distance from the key cell's centre to any of its points, metres. */
	reach: number;
}

/** Key cells' geometry, remembered: callers cluster, and the key is computed on every request. */
const keyCells = new Map<string, CellGeo>();

function keyCellGeometry(cell: string): CellGeo {
	let g = keyCells.get(cell);
	if (!g) {
		if (keyCells.size > 100_000) keyCells.clear();
		keyCells.set(cell, (g = cellGeometry(cell)));
	}
	return g;
}

export function nearbyKey(lat: number, lng: number, radius: number, size: string | undefined, limit: number): NearbyKey {
	const cell = h3.latLngToCell(lat, lng, KEY_RES);
	const g = keyCellGeometry(cell);
	const filter = size ?? "any";
	return {
		key: `${cell}:${radius}:${filter}:${limit}`,
		region: h3.cellToParent(cell, REGION_RES),
		filter,
		centerLat: g.lat,
		centerLng: g.lng,
		reach: g.reach,
	};
}

/** The regions whose keys a change at (lat, lng) may have made stale. */
export function staleRegions(lat: number, lng: number): string[] {
	return h3.gridDisk(h3.latLngToCell(lat, lng, REGION_RES), 1);
}

/** A key's candidates, nearest to the key cell's centre first, with those distances. */
export interface CandidateSet<T> {
	points: T[];
	fromCentre: Float64Array;
}

/**
 * The candidate set for a key (see the header), from a nearby function that
 * answers exactly, nearest first: first the k nearest to the centre within
 * R + δ, then all within the bound that proves enough.
 */
export function candidatesFor<T>(
	k: NearbyKey,
	radius: number,
	limit: number,
	nearby: (lat: number, lng: number, radius: number, limit: number) => NearbyHit<T>[],
): NearbyHit<T>[] {
	const wide = radius + k.reach;
	const nearest = nearby(k.centerLat, k.centerLng, wide, limit);
	if (nearest.length < limit) return nearest; // everything within R + δ
	const bound = Math.min(wide, nearest[nearest.length - 1].distance + 2 * k.reach);
	return nearby(k.centerLat, k.centerLng, bound, Infinity);
}

export function candidateSet<T, C>(hits: NearbyHit<T>[], toCandidate: (p: T) => C): CandidateSet<C> {
	const fromCentre = new Float64Array(hits.length);
	const points = new Array<C>(hits.length);
	for (let i = 0; i < hits.length; i++) {
		points[i] = toCandidate(hits[i].point);
		fromCentre[i] = hits[i].distance;
	}
	return { points, fromCentre };
}

/**
 * Distances from the index and from the caller come from two formulas; a
 * centimetre covers their rounding, so the early stop never drops a point.
 */
const STOP_MARGIN_M = 0.01;

const before = (d: number, id: string, hit: { distance: number; point: { id: string } }) =>
	d < hit.distance || (d === hit.distance && id < hit.point.id);

/** A candidate carries its unit vector (made once per point): a distance is then a few multiplications. */
export interface Placed {
	id: string;
	x: number;
	y: number;
	z: number;
}

/**
 * The exact answer for the caller (nearest first, ties by id, as brute force
 * orders them) from a key's candidate set. Distances are greatCircleDistance's,
 * bit for bit: the same unit vectors, the same operations.
 */
export function answerFrom<T extends Placed>(set: CandidateSet<T>, key: NearbyKey, lat: number, lng: number, radius: number, limit: number) {
	const [qx, qy, qz] = unitVector(lat, lng);
	const [cx, cy, cz] = unitVector(key.centerLat, key.centerLng);
	const offset = distanceFromChord2((cx - qx) ** 2 + (cy - qy) ** 2 + (cz - qz) ** 2);
	const best: { point: T; distance: number }[] = [];
	const { points, fromCentre } = set;
	for (let i = 0; i < points.length; i++) {
		const bound = best.length === limit ? best[limit - 1].distance : radius;
		if (fromCentre[i] - offset > bound + STOP_MARGIN_M) break; // and so are all after it
		const p = points[i];
		const dx = p.x - qx, dy = p.y - qy, dz = p.z - qz;
		const d = distanceFromChord2(dx * dx + dy * dy + dz * dz);
		if (d > radius || (best.length === limit && !before(d, p.id, best[limit - 1]))) continue;
		let at = best.length === limit ? limit - 1 : best.length;
		while (at > 0 && before(d, p.id, best[at - 1])) at--;
		if (best.length === limit) best.pop();
		best.splice(at, 0, { point: p, distance: d });
	}
	return best;
}

/** A key's size filter: one of the sizes, or "any". */
export const FILTERS = ["any", "S", "M", "L"] as const;

/**
 * A replica's candidate sets, bounded in entries and candidates; a change makes
 * the entries of its regions stale at once (a generation per region and
 * filter), without looking for them.
 */
export class NearbyCache<T> {
	private readonly entries: LRUCache<string, { set: CandidateSet<T>; scope: string; generation: number }>;
	private readonly generations = new Map<string, number>();

	/** At most `maxEntries` sets and `maxCandidates` candidates in all (a slot is a reference and a distance, 16 bytes). */
	constructor(maxEntries: number, maxCandidates: number) {
		this.entries = new LRUCache({ max: maxEntries, maxSize: maxCandidates, sizeCalculation: e => e.set.points.length + 1 });
	}

	get(key: NearbyKey): CandidateSet<T> | undefined {
		const e = this.entries.get(key.key);
		return e && e.generation === (this.generations.get(e.scope) ?? 0) ? e.set : undefined;
	}

	set(key: NearbyKey, set: CandidateSet<T>): void {
		const scope = `${key.region}|${key.filter}`;
		this.entries.set(key.key, { set, scope, generation: this.generations.get(scope) ?? 0 });
	}

	/**
	 * Every set of these filters whose members a change at (lat, lng) could
	 * alter is stale from now on: all filters when a point changed, only the
	 * sizes whose free doors crossed zero when a door did (the rows' free doors
	 * are read live, see nearby-json.ts).
	 */
	changedAt(lat: number, lng: number, filters: readonly string[] = FILTERS): void {
		for (const region of staleRegions(lat, lng)) {
			for (const f of filters) {
				const scope = `${region}|${f}`;
				this.generations.set(scope, (this.generations.get(scope) ?? 0) + 1);
			}
		}
	}

	get size(): number {
		return this.entries.size;
	}
}
