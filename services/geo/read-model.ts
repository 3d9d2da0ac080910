/**
 * The geo read model — pure, no broker: every active point in an H3 index for
 * nearby search, per-city lists for the city switch and text search, and
 * per-city H3 cell counts at resolutions 5–9 for the distribution map, all
 * kept current one point at a time (versions make replays and late events
 * harmless).
 *
 * Availability: the catalog counts a point's enabled doors per size; the door
 * actors say which of those are taken right now (reserved, occupied, open,
 * faulty). A point's `available` is the first minus the second.
 */
import * as h3 from "h3-js";
import { SIZES, type PointView, type Pricing, type Size, type SizeCounts } from "../../domain/catalog";
import { PointIndex, unitVector, type NearbyHit } from "./point-index";

export const MAP_RESOLUTIONS = [5, 6, 7, 8, 9] as const;
export type MapRes = (typeof MAP_RESOLUTIONS)[number];

export interface GeoEntry {
	id: string;
	cityCode: string;
	name: string;
	address: string;
	lat: number;
	lng: number;
	pricing: Pricing;
	available: SizeCounts;
	version: number;
	/** Cells at MAP_RESOLUTIONS, in that order. */
	cells: string[];
	/** Name and address, NFKC-normalised and lower-cased, for substring search. */
	text: string;
}

export interface PointRow {
	id: string;
	name: string;
	address: string;
	lat: number;
	lng: number;
	available: SizeCounts;
	pricing: Pricing;
}

/**
 * A nearby candidate as the cache keeps it: the first-period price of each
 * size instead of the whole pricing (a nearby list shows a price, the point's
 * page the tariff), so a cached set and an answer stay small.
 */
export interface NearbyCandidate {
	id: string;
	name: string;
	address: string;
	lat: number;
	lng: number;
	available: SizeCounts;
	firstFen: SizeCounts;
	/** Unit vector of (lat, lng), for distances (nearby-cache.ts); not part of any answer. */
	x: number;
	y: number;
	z: number;
}

/**
 * Made once per entry and kept on it: entries are never changed in place (a
 * change replaces the entry), so the candidate — and the JSON fragments the
 * encoder keeps on it — stay true for as long as the entry is in the index,
 * and a cache miss allocates nothing per candidate. A symbol property (not a
 * WeakMap, whose ephemeron tables every garbage collection walks).
 */
const CANDIDATE = Symbol("nearby candidate");

export function toCandidate(e: GeoEntry & { [CANDIDATE]?: NearbyCandidate }): NearbyCandidate {
	let c = e[CANDIDATE];
	if (!c) {
		const [x, y, z] = unitVector(e.lat, e.lng);
		c = {
			id: e.id, name: e.name, address: e.address, lat: e.lat, lng: e.lng, available: e.available,
			firstFen: { S: e.pricing.S.firstFen, M: e.pricing.M.firstFen, L: e.pricing.L.firstFen },
			x, y, z,
		};
		Object.defineProperty(e, CANDIDATE, { value: c, enumerable: false });
	}
	return c;
}

export function fromFenOf(c: Pick<NearbyCandidate, "available" | "firstFen">, size: Size | undefined): number | null {
	if (size) return c.firstFen[size];
	let best: number | null = null;
	for (const s of SIZES) if (c.available[s] > 0 && (best === null || c.firstFen[s] < best)) best = c.firstFen[s];
	return best;
}

export interface MapCell {
	h3: string;
	points: number;
	availableDoors: number;
}

export const normalizeText = (s: string) => s.normalize("NFKC").toLowerCase().replace(/\s+/g, " ").trim();

const doorsFree = (a: SizeCounts) => a.S + a.M + a.L;

/** The order of every list of points: by name, ties by id (stable across pages). */
const byNameThenId = (a: GeoEntry, b: GeoEntry) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.id < b.id ? -1 : 1);

export function toRow(e: GeoEntry): PointRow {
	return { id: e.id, name: e.name, address: e.address, lat: e.lat, lng: e.lng, available: e.available, pricing: e.pricing };
}

/** A door's last state as the door actors reported it (doors.state.changed). */
export interface DoorStateEvent {
	doorId: string;
	pointId: string;
	size: keyof SizeCounts;
	state: string;
	open: boolean;
	occupied: boolean;
	version: number;
}

/** Taken = cannot be given to a new order now. Disabled doors are the catalog's to count (it leaves them out). */
const isTaken = (d: DoorStateEvent) => d.state !== "disabled" && (d.state !== "available" || d.open || d.occupied);

export class GeoReadModel {
	readonly index: PointIndex<GeoEntry>;
	/** Door id → its last state event (by version). */
	private readonly doors = new Map<string, DoorStateEvent>();
	/** Point id → doors taken per size. */
	private readonly taken = new Map<string, SizeCounts>();
	/** Point id → the catalog's enabled doors per size. */
	private readonly enabled = new Map<string, SizeCounts>();
	/** Every version seen per point id, also of points that are not active (so a late event cannot resurrect one). */
	private readonly versions = new Map<string, number>();
	private readonly byCity = new Map<string, Map<string, GeoEntry>>();
	/** city → one map per resolution of MAP_RESOLUTIONS: cell → counts. */
	private readonly cellCounts = new Map<string, Map<string, MapCell>[]>();

	constructor(res: number) {
		this.index = new PointIndex<GeoEntry>(res);
	}

	get size(): number {
		return this.index.size;
	}

	get(id: string): GeoEntry | undefined {
		return this.index.get(id);
	}

	/**
	 * Applies a point as the catalog now has it. Returns the entries that changed
	 * (before and after, either may be missing), or null when the event was older
	 * than what the model has.
	 */
	apply(p: PointView): { before?: GeoEntry; after?: GeoEntry } | null {
		const seen = this.versions.get(p.id);
		if (seen !== undefined && seen >= p.version) return null;
		this.versions.set(p.id, p.version);
		const before = this.index.get(p.id);
		if (before) this.detach(before);
		if (p.status !== "active") {
			if (before) this.index.remove(p.id);
			return { before };
		}
		this.enabled.set(p.id, { ...p.available });
		const after: GeoEntry = {
			id: p.id, cityCode: p.cityCode, name: p.name, address: p.address, lat: p.lat, lng: p.lng,
			pricing: p.pricing, available: this.availableOf(p.id), version: p.version,
			cells: MAP_RESOLUTIONS.map(r => h3.latLngToCell(p.lat, p.lng, r)),
			text: normalizeText(`${p.name} ${p.address}`),
		};
		this.index.upsert(after); // replaces `before` in place when the point did not move
		let city = this.byCity.get(after.cityCode);
		if (!city) this.byCity.set(after.cityCode, (city = new Map()));
		city.set(after.id, after);
		this.count(after, +1);
		return { before, after };
	}

	/**
	 * Applies a door's state (from the door actors). Returns the point's entry
	 * before and after when its availability changed, null otherwise (also for
	 * a replayed or late event).
	 */
	applyDoor(d: DoorStateEvent): { before: GeoEntry; after: GeoEntry } | null {
		const known = this.doors.get(d.doorId);
		if (known && known.version >= d.version) return null;
		this.doors.set(d.doorId, d);
		const was = known ? isTaken(known) : false;
		const now = isTaken(d);
		if (was === now && (!known || known.size === d.size)) return null;
		const counts = this.taken.get(d.pointId) ?? { S: 0, M: 0, L: 0 };
		if (known && was) counts[known.size]--;
		if (now) counts[d.size]++;
		this.taken.set(d.pointId, counts);
		const before = this.index.get(d.pointId);
		if (!before) return null; // not active (or not known yet): applied when it comes
		const after: GeoEntry = { ...before, available: this.availableOf(d.pointId) };
		this.count(before, -1);
		this.index.upsert(after); // in place: the point did not move
		const city = this.byCity.get(after.cityCode);
		city?.set(after.id, after);
		this.count(after, +1);
		return { before, after };
	}

	private availableOf(pointId: string): SizeCounts {
		const e = this.enabled.get(pointId) ?? { S: 0, M: 0, L: 0 };
		const t = this.taken.get(pointId) ?? { S: 0, M: 0, L: 0 };
		return { S: Math.max(0, e.S - t.S), M: Math.max(0, e.M - t.M), L: Math.max(0, e.L - t.L) };
	}

	nearby(lat: number, lng: number, radius: number, limit: number, size?: keyof SizeCounts): NearbyHit<GeoEntry>[] {
		return this.index.nearby({ lat, lng, radius, limit, filter: size ? e => e.available[size] > 0 : undefined });
	}

	/** Active points of a city, by name (stable across pages). */
	cityPoints(cityCode: string): GeoEntry[] {
		return [...(this.byCity.get(cityCode)?.values() ?? [])].sort(byNameThenId);
	}

	/** Points whose name or address contains `q` (case- and width-insensitive), by name. */
	search(q: string, cityCode?: string): GeoEntry[] {
		const needle = normalizeText(q);
		const pools = cityCode ? [this.byCity.get(cityCode)] : [...this.byCity.values()];
		const found: GeoEntry[] = [];
		for (const pool of pools) if (pool) for (const e of pool.values()) if (e.text.includes(needle)) found.push(e);
		return found.sort(byNameThenId);
	}

	/** The city's H3 distribution at a map resolution: points and free doors per cell. */
	cityMap(cityCode: string, res: MapRes): MapCell[] {
		const perRes = this.cellCounts.get(cityCode);
		if (!perRes) return [];
		return [...perRes[MAP_RESOLUTIONS.indexOf(res)].values()].map(c => ({ ...c })).sort((a, b) => (a.h3 < b.h3 ? -1 : 1));
	}

	cityTotals(cityCode: string): { points: number; availableDoors: number } {
		let points = 0;
		let availableDoors = 0;
		for (const e of this.byCity.get(cityCode)?.values() ?? []) {
			points++;
			availableDoors += doorsFree(e.available);
		}
		return { points, availableDoors };
	}

	/** Lays the index out afresh (after a bulk load). */
	pack(): void {
		this.index.pack();
	}

	/** Takes an entry out of the city lists and counts (the index entry is replaced or removed by the caller). */
	private detach(e: GeoEntry): void {
		const city = this.byCity.get(e.cityCode);
		city?.delete(e.id);
		if (city?.size === 0) this.byCity.delete(e.cityCode);
		this.count(e, -1);
	}

	private count(e: GeoEntry, sign: 1 | -1): void {
		let perRes = this.cellCounts.get(e.cityCode);
		if (!perRes) this.cellCounts.set(e.cityCode, (perRes = MAP_RESOLUTIONS.map(() => new Map())));
		const free = doorsFree(e.available);
		e.cells.forEach((cell, i) => {
			const m = perRes![i];
			const c = m.get(cell) ?? { h3: cell, points: 0, availableDoors: 0 };
			c.points += sign;
			c.availableDoors += sign * free;
			if (c.points === 0) m.delete(cell);
			else m.set(cell, c);
		});
	}
}
