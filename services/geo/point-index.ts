/**
 * In-memory H3 index of points for "nearest k within radius" queries — pure,
 * no broker.
 *
 * Points sit in buckets keyed by their H3 cell at one resolution (chosen from
 * the data, see `chooseResolution`). A query walks rings of cells around the
 * caller's cell and stops as soon as no further ring can hold a point nearer
 * than the k-th result it has (or than the radius). Exact great-circle
 * distance (spherical, from unit-vector chords) decides membership and order, ties broken by id, so the
 * answer is exactly the one a brute-force scan gives (`bruteForceNearby`).
 *
 * Why the stop rule is sound: grid distance changes by at most one between
 * cells that touch, so a straight (geodesic) path from the caller to a point
 * beyond ring k passes through a cell of ring k first. Every point beyond ring k
 * is therefore at least as far as the nearest ring-k cell can be: the distance
 * to that cell's centre minus its reach (the farthest corner, +1 % for the
 * edges' bulge). Each cell is also skipped whole when that bound already
 * exceeds the k-th result. Long walks over sparse data switch to checking every
 * occupied cell's centre, which is cheaper than walking and just as exact.
 *
 * Distances come from the chord between unit vectors (a few multiplications
 * per point); buckets are sorted by z = sin(latitude), so only the band
 * |Δz| ≤ chord is scanned.
 */
import * as h3 from "h3-js";

export const EARTH_RADIUS_M = 6_371_008.8;
const RAD = Math.PI / 180;
/** Origin cells whose first rings are remembered (queries cluster in cities). */
const ORIGIN_CACHE_SIZE = 32_768;
const MAX_CACHED_RING = 6;
/** Centres of empty cells that rings cross (occupied cells keep theirs in the bucket). */
const GEO_CACHE_SIZE = 200_000;

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
	/** Unit vector; z = sin(latitude) also orders a bucket. */
	x: number;
	y: number;
	z: number;
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
	/** rings[k] = cells at grid distance k (the first few, kept). */
	rings: Ring[];
}

/** Scratch arrays for ordering a ring's cells (queries run one at a time). */
let orderScratch = new Uint32Array(64);
let nearScratch = new Float64Array(64);
function ringOrder(n: number): Uint32Array {
	if (orderScratch.length < n) orderScratch = new Uint32Array(n * 2);
	return orderScratch;
}
function ringNear(n: number): Float64Array {
	if (nearScratch.length < n) nearScratch = new Float64Array(n * 2);
	return nearScratch;
}

/** A position as a unit vector: great-circle distance follows from the chord between two. */
export function unitVector(lat: number, lng: number): [number, number, number] {
	const latR = lat * RAD;
	const lngR = lng * RAD;
	const c = Math.cos(latR);
	return [c * Math.cos(lngR), c * Math.sin(lngR), Math.sin(latR)];
}

/** Great-circle distance in metres from a squared chord of the unit sphere. */
function distanceFromChord2(c2: number): number {
	return 2 * EARTH_RADIUS_M * Math.asin(Math.min(1, Math.sqrt(c2) / 2));
}

/** The chord of a great-circle distance (metres), Infinity stays Infinity. */
function chordOf(d: number): number {
	if (!Number.isFinite(d)) return Infinity;
	return 2 * Math.sin(Math.min(Math.PI / 2, d / (2 * EARTH_RADIUS_M)));
}

/**
 * Great-circle distance in metres (spherical Earth, via the chord of unit vectors:
 * well-conditioned for short distances and a few multiplications per point in the
 * index, which computes it the same way, so both give identical bits).
 */
export function greatCircleDistance(lat1: number, lng1: number, lat2: number, lng2: number): number {
	// unitVector() spelled out (same operations, same order: identical bits) to spare two arrays per call.
	const la1 = lat1 * RAD, ln1 = lng1 * RAD, la2 = lat2 * RAD, ln2 = lng2 * RAD;
	const c1 = Math.cos(la1);
	const c2 = Math.cos(la2);
	const dx = c2 * Math.cos(ln2) - c1 * Math.cos(ln1);
	const dy = c2 * Math.sin(ln2) - c1 * Math.sin(ln1);
	const dz = Math.sin(la2) - Math.sin(la1);
	return distanceFromChord2(dx * dx + dy * dy + dz * dz);
}

/** The order every nearby answer uses: distance, then id. */
function closer(d1: number, id1: string, d2: number, id2: string): boolean {
	return d1 < d2 || (d1 === d2 && id1 < id2);
}

/**
 * The best hits so far. Bounded (k ≤ 100 in the API): two parallel arrays kept
 * sorted by insertion, no allocation per offer. Unbounded: collected, sorted once.
 */
class TopK<P extends GeoPoint> {
	private readonly dist: number[] = [];
	private readonly pts: P[] = [];
	private readonly bounded: boolean;
	/** Distance a new hit must beat once full (Infinity before). */
	worst = Infinity;

	constructor(private readonly k: number) {
		this.bounded = Number.isFinite(k);
	}

	get full(): boolean {
		return this.bounded && this.pts.length >= this.k;
	}

	offer(point: P, distance: number): void {
		const dist = this.dist;
		const pts = this.pts;
		let n = pts.length;
		if (!this.bounded) {
			dist.push(distance);
			pts.push(point);
			return;
		}
		// Ids are read only on equal distances: touching each point object is a cache miss.
		if (n >= this.k) {
			const last = dist[n - 1];
			if (distance > last || (distance === last && !(point.id < pts[n - 1].id))) return;
			n--; // the last one drops out
		} else {
			dist.push(0);
			pts.push(point);
		}
		let i = n;
		while (i > 0 && (distance < dist[i - 1] || (distance === dist[i - 1] && point.id < pts[i - 1].id))) {
			dist[i] = dist[i - 1];
			pts[i] = pts[i - 1];
			i--;
		}
		dist[i] = distance;
		pts[i] = point;
		if (pts.length >= this.k) this.worst = dist[pts.length - 1];
	}

	result(): NearbyHit<P>[] {
		const hits = this.pts.map((point, i) => ({ point, distance: this.dist[i] }));
		if (!this.bounded) hits.sort(byDistanceThenId);
		return hits;
	}
}

const byDistanceThenId = (a: NearbyHit<GeoPoint>, b: NearbyHit<GeoPoint>) => (closer(a.distance, a.point.id, b.distance, b.point.id) ? -1 : 1);

/** The answer a full scan gives: the reference the index must equal. */
export function bruteForceNearby<P extends GeoPoint>(points: Iterable<P>, q: NearbyQuery<P>): NearbyHit<P>[] {
	const all: NearbyHit<P>[] = [];
	for (const p of points) {
		if (q.filter && !q.filter(p)) continue;
		const d = greatCircleDistance(q.lat, q.lng, p.lat, p.lng);
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

export interface CellGeo {
	cell: string;
	lat: number;
	lng: number;
	/** Unit vector of the centre. */
	x: number;
	y: number;
	z: number;
	reach: number;
}

/** A cell's centre, its unit vector, and its reach: the farthest distance from the centre to any of its points. */
export function cellGeometry(cell: string): CellGeo {
	const [lat, lng] = h3.cellToLatLng(cell);
	let reach = 0;
	for (const [vLat, vLng] of h3.cellToBoundary(cell)) reach = Math.max(reach, greatCircleDistance(lat, lng, vLat, vLng));
	// Cell edges bulge slightly beyond the chord between corners; 1 % covers it.
	const [x, y, z] = unitVector(lat, lng);
	return { cell, lat, lng, x, y, z, reach: reach * 1.01 };
}

/** First index whose z is ≥ z (entries are kept sorted by z, i.e. by latitude). */
function lowerBoundByZ(entries: readonly { z: number }[], z: number): number {
	let lo = 0;
	let hi = entries.length;
	while (lo < hi) {
		const mid = (lo + hi) >>> 1;
		if (entries[mid].z < z) lo = mid + 1;
		else hi = mid;
	}
	return lo;
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
		const [x, y, z] = unitVector(point.lat, point.lng);
		const entry: Entry<P> = { point, x, y, z };
		let bucket = this.cells.get(cell);
		if (!bucket) this.cells.set(cell, (bucket = newBucket<P>(cell)));
		bucket.entries.splice(lowerBoundByZ(bucket.entries, entry.z), 0, entry);
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
		const qv = unitVector(q.lat, q.lng);
		let visited = 0;
		for (let k = 0; ; k++) {
			// A long walk (large radius over sparse data) costs about 20× more per cell than
			// checking an occupied cell's centre: past that point scanning the occupied cells
			// is cheaper, and just as exact.
			visited += k === 0 ? 1 : 6 * k;
			if (visited > this.cells.size / 16 + 64) return this.scanAll(q);
			const ring = this.ring(origin, k);
			// Distances of the ring's cells from the caller; visited nearest first.
			const order = ringOrder(ring.length);
			const near = ringNear(ring.length);
			let ringNearest = Infinity;
			for (let i = 0; i < ring.length; i++) {
				const geo = ring[i];
				const dx = geo.x - qv[0];
				const dy = geo.y - qv[1];
				const dz = geo.z - qv[2];
				near[i] = distanceFromChord2(dx * dx + dy * dy + dz * dz) - geo.reach;
				if (near[i] < ringNearest) ringNearest = near[i];
				order[i] = i;
			}
			if (ring.length > 1) order.subarray(0, ring.length).sort((a, b) => near[a] - near[b]);
			for (let n = 0; n < ring.length; n++) {
				const i = order[n];
				if (near[i] > Math.min(q.radius, top.worst)) break; // the rest are farther still
				const bucket = this.cells.get(ring[i].cell);
				if (bucket) this.visit(bucket, q, top, qv);
			}
			// Any point beyond ring k lies past ring k, so at least this far away.
			if (ringNearest > Math.min(q.radius, top.worst)) return top.result();
		}
	}

	/** Every occupied cell that could hold a hit; cells whose nearest corner is too far are skipped whole. */
	private scanAll(q: NearbyQuery<P>): NearbyHit<P>[] {
		const top = new TopK<P>(q.limit);
		const qv = unitVector(q.lat, q.lng);
		for (const bucket of this.cells.values()) {
			if (greatCircleDistance(q.lat, q.lng, bucket.lat, bucket.lng) - bucket.reach > Math.min(q.radius, top.worst)) continue;
			this.visit(bucket, q, top, qv);
		}
		return top.result();
	}

	private visit(bucket: Bucket<P>, q: NearbyQuery<P>, top: TopK<P>, qv: [number, number, number]): void {
		const qx = qv[0];
		const qy = qv[1];
		const qz = qv[2];
		const entries = bucket.entries;
		// Compare squared chords (no trigonometry) until a point is known to be in range.
		let chord = chordOf(Math.min(q.radius, top.worst));
		let chord2 = chord * chord * (1 + 1e-9);
		// Entries are sorted by z, and |Δz| never exceeds the chord: only that band can hold a hit.
		// Walk outwards from the caller's z, nearest band first, so the k-th distance (and with
		// it the band) shrinks as early as possible.
		let up = lowerBoundByZ(entries, qz);
		let down = up - 1;
		while (up < entries.length || down >= 0) {
			let e: Entry<P>;
			if (down < 0 || (up < entries.length && entries[up].z - qz <= qz - entries[down].z)) e = entries[up++];
			else e = entries[down--];
			const dz = e.z - qz;
			if (dz > chord || dz < -chord) break; // the nearer side is already out of the band, so is the other
			const dx = e.x - qx;
			const dy = e.y - qy;
			const c2 = dx * dx + dy * dy + dz * dz;
			if (c2 > chord2) continue;
			const d = distanceFromChord2(c2);
			if (d > q.radius) continue;
			if (q.filter && !q.filter(e.point)) continue;
			top.offer(e.point, d);
			if (top.full) {
				chord = chordOf(Math.min(q.radius, top.worst));
				chord2 = chord * chord * (1 + 1e-9);
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
		o = { cell, rings: [] };
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
