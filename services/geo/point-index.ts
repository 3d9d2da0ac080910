/**
 * In-memory H3 index of points for "nearest k within radius" queries — pure,
 * no broker.
 *
 * Points sit in buckets keyed by their H3 cell at one resolution (chosen from
 * the data, see `chooseResolution`). A query walks rings of cells around the
 * caller's cell and stops as soon as no further ring can hold a point nearer
 * than the k-th result it has (or than the radius). Exact great-circle
 * distance (haversine) decides membership and order, ties broken by id, so the
 * answer is exactly the one a brute-force scan gives (`bruteForceNearby`).
 *
 * Why the stop rule is sound: grid distance changes by at most one between
 * cells that touch, so a straight (geodesic) path from the caller to a point in
 * ring ≥ k crosses each of rings 1 … k−1 from its inner to its outer boundary.
 * In a hexagonal tiling no vertex touches both ring j−1 and ring j+1, and the
 * inner and outer boundaries of a ring are at least one edge length apart.
 * So every point in rings ≥ k is at least (k−1) · e away, with e the local
 * edge length; we use 80 % of the smallest edge of the caller's cell as e,
 * which absorbs H3's slow change of cell size over a 50 km search (well under
 * 2 %) and the pentagons' shorter edges.
 */
import * as h3 from "h3-js";

export const EARTH_RADIUS_M = 6_371_008.8;
const RAD = Math.PI / 180;
/** Origin cells whose rings and edge length are remembered (queries cluster in cities). */
const ORIGIN_CACHE_SIZE = 2048;
const MAX_CACHED_RING = 5;
/** Centres of empty cells that rings cross (occupied cells keep theirs in the bucket). */
const GEO_CACHE_SIZE = 100_000;

export interface GeoPoint {
	id: string;
	lat: number;
	lng: number;
}

export interface NearbyHit<P> {
	point: P;
	/** Metres, great-circle. */
	distance: number;
}

export interface NearbyQuery<P> {
	lat: number;
	lng: number;
	/** Metres. */
	radius: number;
	/** Nearest this many (Infinity = all within the radius). */
	limit: number;
	/** Only points for which this holds (e.g. a free door of a size). */
	filter?: (p: P) => boolean;
}

interface Entry<P> {
	point: P;
	latR: number;
	lngR: number;
	cosLat: number;
}

interface Bucket<P> {
	entries: Entry<P>[];
	/** Cell centre and the farthest distance from it to the cell's corners, for pruning whole cells. */
	lat: number;
	lng: number;
	reach: number;
}

/** A ring: its cells with their centres and reach. */
type Ring = CellGeo[];

interface Origin {
	cell: string;
	lat: number;
	lng: number;
	/** rings[k] = cells at grid distance k (the first few, kept). */
	rings: Ring[];
}

/** Great-circle distance in metres. */
export function haversine(lat1: number, lng1: number, lat2: number, lng2: number): number {
	// Same operations, in the same order, as the index's inner loop, so both give identical bits.
	const dLat = lat2 * RAD - lat1 * RAD;
	const s1 = Math.sin(dLat / 2);
	const s2 = Math.sin((lng2 * RAD - lng1 * RAD) / 2);
	const a = s1 * s1 + Math.cos(lat1 * RAD) * Math.cos(lat2 * RAD) * s2 * s2;
	return 2 * EARTH_RADIUS_M * Math.asin(Math.min(1, Math.sqrt(a)));
}

/** The order every nearby answer uses: distance, then id. */
function closer(d1: number, id1: string, d2: number, id2: string): boolean {
	return d1 < d2 || (d1 === d2 && id1 < id2);
}

/** The best hits so far: kept sorted when bounded (k ≤ 100 in the API), sorted once at the end when not. */
class TopK<P extends GeoPoint> {
	private readonly list: NearbyHit<P>[] = [];
	private readonly bounded: boolean;
	constructor(private readonly k: number) {
		this.bounded = Number.isFinite(k);
	}

	get full(): boolean {
		return this.bounded && this.list.length >= this.k;
	}

	/** Distance a new hit must beat once full (Infinity before). */
	get worst(): number {
		return this.full ? this.list[this.list.length - 1].distance : Infinity;
	}

	offer(point: P, distance: number): void {
		const hits = this.list;
		if (!this.bounded) {
			hits.push({ point, distance });
			return;
		}
		if (this.full) {
			const last = hits[hits.length - 1];
			if (!closer(distance, point.id, last.distance, last.point.id)) return;
			hits.pop();
		}
		let i = hits.length;
		while (i > 0 && closer(distance, point.id, hits[i - 1].distance, hits[i - 1].point.id)) i--;
		hits.splice(i, 0, { point, distance });
	}

	result(): NearbyHit<P>[] {
		if (!this.bounded) this.list.sort(byDistanceThenId);
		return this.list;
	}
}

const byDistanceThenId = (a: NearbyHit<GeoPoint>, b: NearbyHit<GeoPoint>) => (closer(a.distance, a.point.id, b.distance, b.point.id) ? -1 : 1);

/** The answer a full scan gives: the reference the index must equal. */
export function bruteForceNearby<P extends GeoPoint>(points: Iterable<P>, q: NearbyQuery<P>): NearbyHit<P>[] {
	const all: NearbyHit<P>[] = [];
	for (const p of points) {
		if (q.filter && !q.filter(p)) continue;
		const d = haversine(q.lat, q.lng, p.lat, p.lng);
		if (d <= q.radius) all.push({ point: p, distance: d });
	}
	all.sort(byDistanceThenId);
	return Number.isFinite(q.limit) ? all.slice(0, q.limit) : all;
}

/**
 * The finest resolution (5–10) at which occupied cells hold on average at least
 * `perCell` points: fine enough that a query touches few points, coarse enough
 * that it walks few rings. Sampled, so it is cheap for 100 000 points.
 */
export function chooseResolution(points: readonly { lat: number; lng: number }[], perCell = 12, sample = 20_000): number {
	if (points.length === 0) return 8;
	const stride = Math.max(1, Math.floor(points.length / sample));
	const picked: { lat: number; lng: number }[] = [];
	for (let i = 0; i < points.length; i += stride) picked.push(points[i]);
	// Per-cell density is measured on the sample and scaled to the full set.
	const scale = points.length / picked.length;
	for (let res = 10; res >= 5; res--) {
		const cells = new Set<string>();
		for (const p of picked) cells.add(h3.latLngToCell(p.lat, p.lng, res));
		if ((picked.length * scale) / cells.size >= perCell) return res;
	}
	return 5;
}

interface CellGeo {
	cell: string;
	lat: number;
	lng: number;
	reach: number;
}

function cellGeometry(cell: string): CellGeo {
	const [lat, lng] = h3.cellToLatLng(cell);
	let reach = 0;
	for (const [vLat, vLng] of h3.cellToBoundary(cell)) reach = Math.max(reach, haversine(lat, lng, vLat, vLng));
	// Cell edges bulge slightly beyond the chord between corners; 1 % covers it.
	return { cell, lat, lng, reach: reach * 1.01 };
}

/** First index whose latitude is ≥ latR (entries are kept sorted by latitude). */
function lowerBoundByLat(entries: readonly { latR: number }[], latR: number): number {
	let lo = 0;
	let hi = entries.length;
	while (lo < hi) {
		const mid = (lo + hi) >>> 1;
		if (entries[mid].latR < latR) lo = mid + 1;
		else hi = mid;
	}
	return lo;
}

/** sin²(d / 2R): the haversine value of a distance, to compare without sqrt/asin. */
function havOf(d: number): number {
	if (!Number.isFinite(d)) return Infinity;
	const s = Math.sin(Math.min(Math.PI / 2, d / (2 * EARTH_RADIUS_M)));
	return s * s;
}

function newBucket<P>(cell: string): Bucket<P> {
	const { lat, lng, reach } = cellGeometry(cell);
	return { entries: [], lat, lng, reach };
}

export class PointIndex<P extends GeoPoint> {
	private readonly cells = new Map<string, Bucket<P>>();
	private readonly byId = new Map<string, { entry: Entry<P>; cell: string }>();
	private readonly origins = new Map<string, Origin>();
	private readonly geoCache = new Map<string, CellGeo>();

	constructor(readonly res: number) {
		if (!Number.isInteger(res) || res < 0 || res > 15) throw new RangeError(`H3 resolution must be 0–15, got ${res}`);
	}

	get size(): number {
		return this.byId.size;
	}

	get cellCount(): number {
		return this.cells.size;
	}

	get(id: string): P | undefined {
		return this.byId.get(id)?.entry.point;
	}

	*points(): IterableIterator<P> {
		for (const { entry } of this.byId.values()) yield entry.point;
	}

	/** Adds or replaces a point (a move changes its bucket). */
	upsert(point: P): void {
		const cell = h3.latLngToCell(point.lat, point.lng, this.res);
		const known = this.byId.get(point.id);
		if (known && known.cell === cell && known.entry.point.lat === point.lat && known.entry.point.lng === point.lng) {
			known.entry.point = point; // same place: only the data changed
			return;
		}
		if (known) this.detach(known.entry, known.cell);
		const entry: Entry<P> = { point, latR: point.lat * RAD, lngR: point.lng * RAD, cosLat: Math.cos(point.lat * RAD) };
		let bucket = this.cells.get(cell);
		if (!bucket) this.cells.set(cell, (bucket = newBucket<P>(cell)));
		bucket.entries.splice(lowerBoundByLat(bucket.entries, entry.latR), 0, entry);
		this.byId.set(point.id, { entry, cell });
	}

	remove(id: string): boolean {
		const known = this.byId.get(id);
		if (!known) return false;
		this.detach(known.entry, known.cell);
		this.byId.delete(id);
		return true;
	}

	nearby(q: NearbyQuery<P>): NearbyHit<P>[] {
		const origin = this.origin(h3.latLngToCell(q.lat, q.lng, this.res));
		const top = new TopK<P>(q.limit);
		let visited = 0;
		for (let k = 0; ; k++) {
			// A long walk (large radius over sparse data) costs about 20× more per cell than
			// checking an occupied cell's centre: past that point scanning the occupied cells
			// is cheaper, and just as exact.
			visited += k === 0 ? 1 : 6 * k;
			if (visited > this.cells.size / 16 + 64) return this.scanAll(q);
			let ringNearest = Infinity;
			for (const geo of this.ring(origin, k)) {
				const nearest = haversine(q.lat, q.lng, geo.lat, geo.lng) - geo.reach;
				if (nearest < ringNearest) ringNearest = nearest;
				if (nearest > Math.min(q.radius, top.worst)) continue;
				const bucket = this.cells.get(geo.cell);
				if (bucket) this.visit(bucket, q, top);
			}
			// Any point beyond ring k lies past ring k, so at least this far away.
			if (ringNearest > Math.min(q.radius, top.worst)) return top.result();
		}
	}

	/** Every occupied cell that could hold a hit; cells whose nearest corner is too far are skipped whole. */
	private scanAll(q: NearbyQuery<P>): NearbyHit<P>[] {
		const top = new TopK<P>(q.limit);
		for (const bucket of this.cells.values()) {
			if (haversine(q.lat, q.lng, bucket.lat, bucket.lng) - bucket.reach > Math.min(q.radius, top.worst)) continue;
			this.visit(bucket, q, top);
		}
		return top.result();
	}

	private visit(bucket: Bucket<P>, q: NearbyQuery<P>, top: TopK<P>): void {
		const qLatR = q.lat * RAD;
		const qLngR = q.lng * RAD;
		const qCos = Math.cos(qLatR);
		const entries = bucket.entries;
		let bound = Math.min(q.radius, top.worst);
		// Compare in haversine space (no sqrt/asin) until a point is known to be in range.
		let aBound = havOf(bound);
		// Entries are sorted by latitude, and a meridian arc is the shortest way between two
		// latitudes: only the band qLat ± bound can hold a hit.
		let maxLatR = qLatR + bound / EARTH_RADIUS_M;
		for (let i = lowerBoundByLat(entries, qLatR - bound / EARTH_RADIUS_M); i < entries.length; i++) {
			const e = entries[i];
			if (e.latR > maxLatR) break;
			const s1 = Math.sin((e.latR - qLatR) / 2);
			const s2 = Math.sin((e.lngR - qLngR) / 2);
			const a = s1 * s1 + qCos * e.cosLat * s2 * s2;
			if (a > aBound * (1 + 1e-9)) continue;
			const d = 2 * EARTH_RADIUS_M * Math.asin(Math.min(1, Math.sqrt(a)));
			if (d > q.radius) continue;
			if (q.filter && !q.filter(e.point)) continue;
			top.offer(e.point, d);
			if (top.full) {
				bound = Math.min(q.radius, top.worst);
				aBound = havOf(bound);
				maxLatR = qLatR + bound / EARTH_RADIUS_M;
			}
		}
	}

	/** Centre and reach of any cell (also empty ones, which rings cross), remembered. */
	private cellGeo(cell: string): CellGeo {
		let g = this.geoCache.get(cell);
		if (!g) {
			if (this.geoCache.size >= GEO_CACHE_SIZE) this.geoCache.clear();
			this.geoCache.set(cell, (g = cellGeometry(cell)));
		}
		return g;
	}

	private detach(entry: Entry<P>, cell: string): void {
		const bucket = this.cells.get(cell);
		if (!bucket) return;
		const entries = bucket.entries;
		const i = entries.indexOf(entry);
		if (i >= 0) entries.splice(i, 1);
		if (entries.length === 0) this.cells.delete(cell);
	}

	private origin(cell: string): Origin {
		let o = this.origins.get(cell);
		if (o) return o;
		const [lat, lng] = h3.cellToLatLng(cell);
		o = { cell, lat, lng, rings: [] };
		if (this.origins.size >= ORIGIN_CACHE_SIZE) this.origins.delete(this.origins.keys().next().value as string);
		this.origins.set(cell, o);
		return o;
	}

	private ring(origin: Origin, k: number): Ring {
		const known = origin.rings[k];
		if (known) return known;
		let cells: string[];
		if (k === 0) cells = [origin.cell];
		else {
			try {
				cells = h3.gridRingUnsafe(origin.cell, k);
			} catch {
				// Near a pentagon the fast walk fails: take the disk minus the inner disk.
				const inner = new Set(h3.gridDisk(origin.cell, k - 1));
				cells = h3.gridDisk(origin.cell, k).filter(c => !inner.has(c));
			}
		}
		const ring = cells.map(cell => this.cellGeo(cell));
		// Rings of far walks (sparse areas) are not kept: memory would grow with k².
		if (k <= MAX_CACHED_RING) origin.rings[k] = ring;
		return ring;
	}
}
