/**
 * Normalised cache keys for nearby search — pure, no broker.
 *
 * Callers stand anywhere, so the exact position cannot be a key. The key is
 * the caller's H3 cell at resolution 9 (≈ 0.1 km²) plus radius, size filter
 * and limit; the cached value is the *candidate set* computed from the cell's
 * centre c, and the exact answer for the caller q is derived from it per
 * request (exact distances from q, then radius and limit). The candidate set is
 * every point within min(R + δ, d_k(c) + 2δ) of c, where δ bounds |qc| (the
 * cell's reach) and d_k(c) is the k-th distance from c among points within
 * R + δ. Proof that nothing is missed: a point p of q's answer is within R of
 * q, so within R + δ of c; if d(c,p) > d_k(c) + 2δ, then d(q,p) > d_k(c) + δ,
 * and c's k nearest are all within d_k(c) + δ of q — k points nearer than p,
 * all within R of q — so p would not be in q's answer.
 *
 * Keys start with the caller's resolution-3 cell (edge ≈ 60 km): a change at a
 * point can only affect keys in its own resolution-3 cell and the ring around
 * it (radius ≤ 50 km), which is what invalidation cleans.
 */
import * as h3 from "h3-js";
import { cellGeometry, greatCircleDistance, type CellGeo, type NearbyHit } from "./point-index";

export const KEY_RES = 9;
export const REGION_RES = 3;
// The version changes with the cached shape, so a shared cache never hands a new replica an old one.
export const NEARBY_PREFIX = "geo.nearby.v2:";

export interface NearbyKey {
	key: string;
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
	const region = h3.cellToParent(cell, REGION_RES);
	const g = keyCellGeometry(cell);
	return {
		key: `${NEARBY_PREFIX}${region}:${cell}:${radius}:${size ?? "any"}:${limit}`,
		centerLat: g.lat,
		centerLng: g.lng,
		reach: g.reach,
	};
}

/** The key prefixes a change at (lat, lng) may have made stale. */
export function stalePrefixes(lat: number, lng: number): string[] {
	return h3.gridDisk(h3.latLngToCell(lat, lng, REGION_RES), 1).map(region => `${NEARBY_PREFIX}${region}:`);
}

/**
 * The candidate set for a key (see the header), from a nearby function that
 * answers exactly: first the k nearest to the centre within R + δ, then all
 * within the bound that proves enough.
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

/** The exact answer for the caller from a candidate set. */
export function answerFrom<T extends { id: string; lat: number; lng: number }>(candidates: T[], lat: number, lng: number, radius: number, limit: number) {
	const hits: { point: T; distance: number }[] = [];
	for (const p of candidates) {
		const d = greatCircleDistance(lat, lng, p.lat, p.lng);
		if (d <= radius) hits.push({ point: p, distance: d });
	}
	hits.sort((a, b) => a.distance - b.distance || (a.point.id < b.point.id ? -1 : a.point.id > b.point.id ? 1 : 0));
	return hits.slice(0, limit);
}
