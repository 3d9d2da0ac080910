/**
 * In-memory H3 index of points for "nearest k within radius" queries — pure,
 * no broker.
 *
 * Points sit in buckets keyed by their H3 cell at one resolution (chosen from
 * the data, see `chooseResolution`). A query walks rings of cells around the
 * caller's cell and stops as soon as no further ring can hold a point nearer
 * than the k-th result it has (or than the radius). Exact great-circle
 * distance (spherical, from unit-vector chords) decides membership and order,
 * ties broken by id, so the answer is exactly the one a brute-force scan gives
 * (`bruteForceNearby`).
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
 * Speed comes from memory layout, not arithmetic (a query checks ~75 points):
 * - points are packed bucket after bucket into one Float64Array (cells in H3
 *   order), so a query reads a few short contiguous runs; points added or moved
 *   since the last packing sit in small loose buckets until the next one;
 * - rings are walked over a graph of cell nodes linked to their neighbours
 *   (built once, around occupied cells when packing), so a walk costs pointer
 *   hops rather than h3 calls and string lookups, and each origin keeps its
 *   first rings;
 * - within a bucket, points are sorted by z = sin(latitude), so only the band
 *   |Δz| ≤ chord is scanned, and distances start as squared chords.
 */
import * as h3 from "h3-js";

export const EARTH_RADIUS_M = 6_371_008.8;
const RAD = Math.PI / 180;
/**
 * Cells the walk has met, linked to their neighbours. Past this many the graph
 * is dropped and grows again (a bound on memory for callers spread worldwide).
 */
const CELL_GRAPH_LIMIT = 200_000;
/** Rings kept per origin cell (queries cluster in cities); farther ones are walked each time. */
const MAX_CACHED_RING = 4;

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

/** A position as a unit vector: great-circle distance follows from the chord between two. */
export function unitVector(lat: number, lng: number): [number, number, number] {
	const latR = lat * RAD;
	const lngR = lng * RAD;
	const c = Math.cos(latR);
	return [c * Math.cos(lngR), c * Math.sin(lngR), Math.sin(latR)];
}

/** Great-circle distance in metres from a squared chord of the unit sphere. */
export function distanceFromChord2(c2: number): number {
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

/** A point as the index holds it: where it is filed (packed slot, or a loose bucket when slot is -1). */
interface Entry<P> {
	point: P;
	cell: string;
	/** Unit vector; z = sin(latitude) also orders a bucket. */
	x: number;
	y: number;
	z: number;
	slot: number;
}

/**
 * Points added or moved since the last packing, per cell: the same layout as
 * a packed bucket (coordinates flat, sorted by z) in growable arrays.
 */
interface LooseBucket<P> {
	/** A copy: a node would keep its whole (possibly dropped) graph alive. */
	geo: CellGeo;
	xyz: number[];
	points: P[];
}

/**
 * Every point known at the last packing, laid out bucket after bucket (cells in
 * H3 order, so a parent's children sit together) with their coordinates in one
 * Float64Array: a query reads a few short runs of contiguous memory instead of
 * chasing one object per point, which is what made the index slower than a
 * kd-tree. Removed points leave a hole (undefined) until the next packing.
 */
interface Packed<P> {
	bucketOf: Map<string, number>;
	/** Slots of bucket b are start[b] … start[b + 1] - 1. */
	start: Int32Array;
	/** Per bucket: the cell centre's unit vector and the cell's reach (x, y, z, reach). */
	cellGeo: Float64Array;
	/** Per slot: unit vector (x, y, z), sorted by z within a bucket. */
	xyz: Float64Array;
	points: (P | undefined)[];
}

/**
 * A cell as the walk sees it: geometry, where its points are filed, and its
 * neighbours (linked on first use, so a walk costs pointer hops, not h3 calls).
 */
interface CellNode extends CellGeo {
	neighbours: CellNode[] | null;
	/** rings[k] = cells at grid distance k, kept for the first few k once a query started here. */
	rings: CellNode[][] | null;
	/** The query that last reached it (breadth-first marks). */
	seen: number;
	/** Packed bucket (-1: none), valid for the packing `generation`. */
	bucket: number;
	generation: number;
}

/** Loose points are packed once they exceed this many, or this share of the packed ones. */
const LOOSE_MIN = 4096;
const LOOSE_SHARE = 1 / 8;

/** Scratch arrays for a ring's cells and their order (queries run one at a time). */
let orderScratch = new Int32Array(64);
let nearScratch = new Float64Array(64);

/** First slot in [from, to) whose z is ≥ z (slots are sorted by z). */
function lowerBoundByZ(xyz: ArrayLike<number>, from: number, to: number, z: number): number {
	let lo = from;
	let hi = to;
	while (lo < hi) {
		const mid = (lo + hi) >>> 1;
		if (xyz[mid * 3 + 2] < z) lo = mid + 1;
		else hi = mid;
	}
	return lo;
}

function emptyPacked<P>(): Packed<P> {
	return { bucketOf: new Map(), start: new Int32Array(1), cellGeo: new Float64Array(0), xyz: new Float64Array(0), points: [] };
}

export class PointIndex<P extends GeoPoint> {
	private readonly byId = new Map<string, Entry<P>>();
	/** Points per occupied cell. */
	private readonly population = new Map<string, number>();
	private packed: Packed<P> = emptyPacked();
	/** Bumped by every packing: cached rings re-resolve their buckets. */
	private generation = 0;
	private holes = 0;
	private readonly loose = new Map<string, LooseBucket<P>>();
	private looseCount = 0;
	private graph = new Map<string, CellNode>();
	/** Stamp of the current walk. */
	private walk = 0;

	constructor(readonly res: number) {
		if (!Number.isInteger(res) || res < 0 || res > 15) throw new RangeError(`H3 resolution must be 0–15, got ${res}`);
	}

	get size(): number {
		return this.byId.size;
	}

	get cellCount(): number {
		return this.population.size;
	}

	get(id: string): P | undefined {
		return this.byId.get(id)?.point;
	}

	*points(): IterableIterator<P> {
		for (const entry of this.byId.values()) yield entry.point;
	}

	/** Adds or replaces a point (a move changes its bucket; a change in place touches nothing else). */
	upsert(point: P): void {
		const known = this.byId.get(point.id);
		if (known && known.point.lat === point.lat && known.point.lng === point.lng) {
			this.replaceInPlace(known, point);
			return;
		}
		if (known) this.detach(known);
		const cell = h3.latLngToCell(point.lat, point.lng, this.res);
		const [x, y, z] = unitVector(point.lat, point.lng);
		const entry: Entry<P> = { point, cell, x, y, z, slot: -1 };
		this.byId.set(point.id, entry);
		this.population.set(cell, (this.population.get(cell) ?? 0) + 1);
		let bucket = this.loose.get(cell);
		if (!bucket) {
			const { lat, lng, x: cx, y: cy, z: cz, reach } = this.node(cell);
			this.loose.set(cell, (bucket = { geo: { cell, lat, lng, x: cx, y: cy, z: cz, reach }, xyz: [], points: [] }));
		}
		const at = lowerBoundByZ(bucket.xyz, 0, bucket.points.length, z);
		bucket.xyz.splice(at * 3, 0, x, y, z);
		bucket.points.splice(at, 0, point);
		this.looseCount++;
	}

	remove(id: string): boolean {
		const known = this.byId.get(id);
		if (!known) return false;
		this.detach(known);
		this.byId.delete(id);
		return true;
	}

	/**
	 * Lays every point out afresh in the packed layer. The next query runs it by
	 * itself once loose points or holes pile up (so a bulk load packs once, and the
	 * cost is amortised over the changes); call it after a bulk load so the first
	 * query does not pay for it.
	 */
	pack(): void {
		const groups = new Map<string, Entry<P>[]>();
		for (const e of this.byId.values()) {
			const g = groups.get(e.cell);
			if (g) g.push(e);
			else groups.set(e.cell, [e]);
		}
		// Same resolution → same length: string order is H3 order.
		const cells = [...groups.keys()].sort();
		const n = this.byId.size;
		const packed: Packed<P> = {
			bucketOf: new Map(), start: new Int32Array(cells.length + 1), cellGeo: new Float64Array(cells.length * 4),
			xyz: new Float64Array(n * 3), points: new Array<P | undefined>(n),
		};
		let slot = 0;
		cells.forEach((cell, b) => {
			// Queries start where the points are: their cells and the two rings around them are
			// linked now, once, rather than by the first callers there.
			const g = this.node(cell);
			for (const nb of this.neighbours(g)) this.neighbours(nb);
			packed.bucketOf.set(cell, b);
			packed.start[b] = slot;
			packed.cellGeo.set([g.x, g.y, g.z, g.reach], b * 4);
			for (const e of groups.get(cell)!.sort((a, c) => a.z - c.z)) {
				e.slot = slot;
				packed.xyz[slot * 3] = e.x;
				packed.xyz[slot * 3 + 1] = e.y;
				packed.xyz[slot * 3 + 2] = e.z;
				packed.points[slot++] = e.point;
			}
		});
		packed.start[cells.length] = slot;
		this.packed = packed;
		this.generation++;
		this.holes = 0;
		this.loose.clear();
		this.looseCount = 0;
	}

	nearby(q: NearbyQuery<P>): NearbyHit<P>[] {
		const limit = Math.max(LOOSE_MIN, this.byId.size * LOOSE_SHARE);
		if (this.looseCount > limit || this.holes > limit) this.pack();
		if (this.graph.size > CELL_GRAPH_LIMIT) this.graph = new Map();
		const top = new TopK<P>(q.limit);
		const [qx, qy, qz] = unitVector(q.lat, q.lng);
		const occupied = this.population.size;
		const origin = this.node(h3.latLngToCell(q.lat, q.lng, this.res));
		const rings = (origin.rings ??= [[origin]]);
		let inner: CellNode[] = [];
		let ring = rings[0];
		let visited = 0;
		for (let k = 0; ; k++) {
			// A long walk (large radius over sparse data) costs about 20× more per cell than
			// checking an occupied cell's centre: past that point scanning the occupied cells
			// is cheaper, and just as exact.
			visited += ring.length;
			if (visited > occupied / 16 + 64) return this.scanAll(q, qx, qy, qz);
			const n = ring.length;
			if (orderScratch.length < n) {
				orderScratch = new Int32Array(n * 2);
				nearScratch = new Float64Array(n * 2);
			}
			const order = orderScratch;
			const near = nearScratch;
			// Distances of the ring's cells from the caller; visited nearest first (insertion
			// sort: rings are short, and a comparator sort costs more than it saves).
			let ringNearest = Infinity;
			for (let i = 0; i < n; i++) {
				const c = ring[i];
				const dx = c.x - qx;
				const dy = c.y - qy;
				const dz = c.z - qz;
				const d = distanceFromChord2(dx * dx + dy * dy + dz * dz) - c.reach;
				near[i] = d;
				if (d < ringNearest) ringNearest = d;
				let j = i;
				while (j > 0 && near[order[j - 1]] > d) {
					order[j] = order[j - 1];
					j--;
				}
				order[j] = i;
			}
			const packed = this.packed;
			for (let m = 0; m < n; m++) {
				const i = order[m];
				if (near[i] > Math.min(q.radius, top.worst)) break; // the rest are farther still
				const c = ring[i];
				if (c.generation !== this.generation) {
					c.bucket = packed.bucketOf.get(c.cell) ?? -1;
					c.generation = this.generation;
				}
				if (c.bucket >= 0) this.visit(packed.xyz, packed.points, packed.start[c.bucket], packed.start[c.bucket + 1], q, top, qx, qy, qz);
				if (this.looseCount > 0) {
					const lb = this.loose.get(c.cell);
					if (lb) this.visit(lb.xyz, lb.points, 0, lb.points.length, q, top, qx, qy, qz);
				}
			}
			// Any point beyond ring k lies past ring k, so at least this far away.
			if (ringNearest > Math.min(q.radius, top.worst)) return top.result();
			let outer = rings[k + 1];
			if (!outer) {
				outer = this.nextRing(inner, ring);
				if (k + 1 <= MAX_CACHED_RING) rings[k + 1] = outer;
			}
			inner = ring;
			ring = outer;
		}
	}

	/** Every occupied cell that could hold a hit; cells whose nearest corner is too far are skipped whole. */
	private scanAll(q: NearbyQuery<P>, qx: number, qy: number, qz: number): NearbyHit<P>[] {
		const top = new TopK<P>(q.limit);
		const tooFar = (x: number, y: number, z: number, reach: number) => {
			const dx = x - qx;
			const dy = y - qy;
			const dz = z - qz;
			return distanceFromChord2(dx * dx + dy * dy + dz * dz) - reach > Math.min(q.radius, top.worst);
		};
		const { start, cellGeo, xyz, points } = this.packed;
		for (let b = 0; b < start.length - 1; b++) {
			if (tooFar(cellGeo[b * 4], cellGeo[b * 4 + 1], cellGeo[b * 4 + 2], cellGeo[b * 4 + 3])) continue;
			this.visit(xyz, points, start[b], start[b + 1], q, top, qx, qy, qz);
		}
		for (const lb of this.loose.values()) {
			if (tooFar(lb.geo.x, lb.geo.y, lb.geo.z, lb.geo.reach)) continue;
			this.visit(lb.xyz, lb.points, 0, lb.points.length, q, top, qx, qy, qz);
		}
		return top.result();
	}

	/** Offers the points of slots [from, to) (sorted by z) that lie within the radius and pass the filter. */
	private visit(
		xyz: ArrayLike<number>, points: ArrayLike<P | undefined>, from: number, to: number,
		q: NearbyQuery<P>, top: TopK<P>, qx: number, qy: number, qz: number,
	): void {
		// Compare squared chords (no trigonometry) until a point is known to be in range.
		let chord = chordOf(Math.min(q.radius, top.worst));
		let chord2 = chord * chord * (1 + 1e-9);
		// Slots are sorted by z, and |Δz| never exceeds the chord: only that band can hold a hit.
		// Walk outwards from the caller's z, nearest band first, so the k-th distance (and with
		// it the band) shrinks as early as possible.
		let up = lowerBoundByZ(xyz, from, to, qz);
		let down = up - 1;
		while (up < to || down >= from) {
			let s: number;
			if (down < from || (up < to && xyz[up * 3 + 2] - qz <= qz - xyz[down * 3 + 2])) s = up++;
			else s = down--;
			const dz = xyz[s * 3 + 2] - qz;
			if (dz > chord || dz < -chord) break; // the nearer side is already out of the band, so is the other
			const dx = xyz[s * 3] - qx;
			const dy = xyz[s * 3 + 1] - qy;
			const c2 = dx * dx + dy * dy + dz * dz;
			if (c2 > chord2) continue;
			const point = points[s];
			if (point === undefined) continue; // removed since the packing
			const d = distanceFromChord2(c2);
			if (d > q.radius) continue;
			if (q.filter && !q.filter(point)) continue;
			top.offer(point, d);
			if (top.full) {
				chord = chordOf(Math.min(q.radius, top.worst));
				chord2 = chord * chord * (1 + 1e-9);
			}
		}
	}

	private replaceInPlace(entry: Entry<P>, point: P): void {
		if (entry.slot >= 0) this.packed.points[entry.slot] = point;
		else {
			const lb = this.loose.get(entry.cell)!;
			lb.points[lb.points.indexOf(entry.point)] = point;
		}
		entry.point = point;
	}

	/** Takes an entry out of its cell (the caller drops or re-files it). */
	private detach(entry: Entry<P>): void {
		if (entry.slot >= 0) {
			this.packed.points[entry.slot] = undefined;
			this.holes++;
		} else {
			const lb = this.loose.get(entry.cell)!;
			const i = lb.points.indexOf(entry.point);
			lb.points.splice(i, 1);
			lb.xyz.splice(i * 3, 3);
			if (lb.points.length === 0) this.loose.delete(entry.cell);
			this.looseCount--;
		}
		const left = (this.population.get(entry.cell) ?? 1) - 1;
		if (left === 0) this.population.delete(entry.cell);
		else this.population.set(entry.cell, left);
	}

	/** The walk's node of a cell (also an empty one, which walks cross), made on first use. */
	private node(cell: string): CellNode {
		let n = this.graph.get(cell);
		if (!n) this.graph.set(cell, (n = { ...cellGeometry(cell), neighbours: null, rings: null, seen: 0, bucket: -1, generation: -1 }));
		return n;
	}

	/**
	 * The ring after `ring` (inner is the one before): the neighbours of ring k are
	 * in rings k - 1, k and k + 1, so the new ones form ring k + 1 (breadth-first
	 * distance is grid distance, pentagons included).
	 */
	private nextRing(inner: readonly CellNode[], ring: readonly CellNode[]): CellNode[] {
		const walk = ++this.walk;
		for (const c of inner) c.seen = walk;
		for (const c of ring) c.seen = walk;
		const outer: CellNode[] = [];
		for (const c of ring) {
			for (const nb of this.neighbours(c)) {
				if (nb.seen === walk) continue;
				nb.seen = walk;
				outer.push(nb);
			}
		}
		return outer;
	}

	private neighbours(n: CellNode): CellNode[] {
		if (n.neighbours) return n.neighbours;
		let cells: string[];
		try {
			cells = h3.gridRingUnsafe(n.cell, 1);
		} catch {
			// Next to a pentagon the fast walk fails (and a pentagon has five neighbours).
			cells = h3.gridDisk(n.cell, 1).filter(c => c !== n.cell);
		}
		return (n.neighbours = cells.map(c => this.node(c)));
	}
}
