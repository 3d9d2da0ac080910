/**
 * geo: finding a storage point. A read model — every replica holds all active
 * points in memory (H3 index, city lists, city cell counts), built at start
 * from the catalog (`merchants.pointsPage`) and kept current from the catalog's
 * broadcast events. Until door actors report, a point's availability is its
 * enabled doors.
 *
 * Nearby answers come from candidate sets cached per caller cell, in each
 * replica's own memory (see geo/nearby-cache.ts); every change a replica
 * applies makes the sets of the region it touches stale on that replica. The
 * city map goes through the Moleculer cacher (Redis when configured), cleaned
 * the same way.
 */
import type { Context, ServiceSchema, ServiceSettingSchema } from "moleculer";
import type { Config } from "../config";
import type { AppMeta } from "../types/auth";
import { latParam, lngParam, pageParams, type Page } from "../types/params";
import { notFound, serviceUnavailable } from "../types/errors";
import { SIZES, type PointView, type Size } from "../domain/catalog";
import type { PointChangedEvent } from "../types/events";
import type { DoorStateEvent } from "./geo/read-model";
import { doorsNodes } from "../lib/door-client";
import { answerFrom, candidatesFor, candidateSet, nearbyKey, NearbyCache } from "./geo/nearby-cache";
import { encodeNearby } from "./geo/nearby-json";
import { chooseResolution } from "./geo/point-index";
import { GeoReadModel, MAP_RESOLUTIONS, toCandidate, toRow, type GeoEntry, type MapCell, type MapRes, type NearbyCandidate } from "./geo/read-model";
import { BUSINESS_METRICS, meter, type Series } from "../lib/business-metrics";
import { dependsOn } from "../lib/wait-for-services";

/** Buffers a change that arrived before the snapshot: only the newest version of each counts. */
function keepNewest<T extends { version: number }>(pending: Map<string, T>, id: string, item: T): void {
	const known = pending.get(id);
	if (!known || known.version < item.version) pending.set(id, item);
}

export interface NearbyParams { lat: number; lng: number; radius: number; size?: Size; limit: number }
export interface SearchParams { q: string; city?: string; page: number; pageSize: number }

/** Points per snapshot/catch-up message: about 300 kB, well under NATS's default 1 MB limit. */
const SNAPSHOT_PAGE = 500;
/** How often a replica asks the catalog for changes it may have missed, and how far back (clock skew between nodes). */
const CATCH_UP_EVERY_MS = 5_000;
const CATCH_UP_OVERLAP_MS = 10_000;
const CACHE_TTL_SEC = 300;
/** Nearby candidate sets a replica keeps: near a station one holds a thousand points, out of town a few dozen. */
const NEARBY_CACHE_ENTRIES = 50_000;
const NEARBY_CACHE_CANDIDATES = 2_000_000;

interface Settings extends ServiceSettingSchema {
	rest: string;
}

interface Methods {
	model(): GeoReadModel;
	loadSnapshot(): Promise<void>;
	applyPoint(p: PointView): Promise<void>;
	applyDoor(d: DoorStateEvent): Promise<void>;
	loadTakenDoors(): Promise<void>;
	cleanCaches(entries: (GeoEntry | undefined)[], nearbyFilters?: readonly string[]): Promise<void>;
	catchUp(): Promise<void>;
	countCache(result: "hit" | "miss"): void;
	page<T>(rows: T[], page: number, pageSize: number): Page<T>;
	ensureCity(code: string): void;
	checkReady(): void;
}

interface Vars {
	read?: GeoReadModel;
	nearbyCache: NearbyCache<NearbyCandidate>;
	/** Events that arrived while the snapshot was loading, applied after it (by version). */
	pending: Map<string, PointView>;
	/** Door states that arrived while the snapshot was loading. */
	pendingDoors: Map<string, DoorStateEvent>;
	takenLoaded: boolean;
	cities: Set<string>;
	cacheStats: { hits: number; misses: number };
	/** Bound once: a nearby search updates them in place (it runs thousands of times a second). */
	nearbySeries: { hit: Series; miss: Series; latency: Series };
	/** Catch-up cursor: newest catalog change (`updatedAt`, ms) read by catch-up; it asks from a little before it. */
	syncedUntil: number;
	catchUpTimer?: NodeJS.Timeout;
	catchingUp?: Promise<void>;
}

type This = Vars & Methods & { broker: Context["broker"]; logger: any };

export function createGeoService(_config: Config): ServiceSchema<Settings, Methods, Vars> {
	return {
		name: "geo",
		settings: { rest: "" },
		mixins: [dependsOn(["merchants"])],

		actions: {
			nearby: {
				rest: "GET /points/nearby",
				auth: "public",
				summary: "Active points near a place, nearest first (only those with a free door of `size` when given)",
				params: {
					lat: { ...latParam, convert: true },
					lng: { ...lngParam, convert: true },
					radius: { type: "number", integer: true, min: 1, max: 50_000, optional: true, convert: true, default: 2000 },
					size: { type: "enum", values: [...SIZES], optional: true },
					limit: { type: "number", integer: true, min: 1, max: 100, optional: true, convert: true, default: 20 },
				},
				async handler(this: This, ctx: Context<NearbyParams, AppMeta>): Promise<Buffer | string> {
					const started = performance.now();
					const { lat, lng, radius, size, limit } = ctx.params;
					const model = this.model();
					const key = nearbyKey(lat, lng, radius, size, limit);
					let set = this.nearbyCache.get(key);
					this.countCache(set ? "hit" : "miss");
					if (!set) {
						set = candidateSet(candidatesFor(key, radius, limit, (la, ln, r, l) => model.nearby(la, ln, r, l, size)), toCandidate);
						this.nearbyCache.set(key, set);
					}
					// Already JSON (services/geo/nearby-json.ts): the gateway sends it as it is. Its bytes to a
					// caller on this node; text over the mesh, whose JSON packets would spell a Buffer out byte by byte.
					ctx.meta.$responseType = "application/json; charset=utf-8";
					const body = encodeNearby(answerFrom(set, key, lat, lng, radius, limit), size, id => model.get(id)?.available);
					this.nearbySeries.latency.observe(performance.now() - started);
					return ctx.nodeID === this.broker.nodeID ? body : body.toString("utf8");
				},
			},

			search: {
				rest: "GET /points/search",
				auth: "public",
				summary: "Active points whose name or address contains q (any script, case-insensitive)",
				params: { q: { type: "string", min: 1, max: 50, trim: true }, city: { type: "string", min: 2, max: 8, optional: true }, ...pageParams },
				async handler(this: This, ctx: Context<SearchParams>) {
					const { q, city, page, pageSize } = ctx.params;
					if (city) this.ensureCity(city);
					return this.page(this.model().search(q, city).map(e => toRow(e)), page, pageSize);
				},
			},

			cityPoints: {
				rest: "GET /cities/:code/points",
				auth: "public",
				summary: "Every active point of a city (the city switch), by name, a page at a time",
				params: { code: { type: "string", min: 2, max: 8 }, ...pageParams },
				async handler(this: This, ctx: Context<{ code: string; page: number; pageSize: number }>) {
					this.ensureCity(ctx.params.code);
					return this.page(this.model().cityPoints(ctx.params.code).map(e => toRow(e)), ctx.params.page, ctx.params.pageSize);
				},
			},

			cityMap: {
				rest: "GET /cities/:code/map",
				auth: "public",
				summary: "H3 distribution of a city: points and free doors per cell at resolution res (5–9)",
				params: {
					code: { type: "string", min: 2, max: 8 },
					res: { type: "number", integer: true, min: 5, max: 9, optional: true, convert: true, default: 7 },
				},
				cache: { keys: ["code", "res"], ttl: CACHE_TTL_SEC },
				async handler(this: This, ctx: Context<{ code: string; res: MapRes }>): Promise<{ res: number; cells: MapCell[] }> {
					this.ensureCity(ctx.params.code);
					return { res: ctx.params.res, cells: this.model().cityMap(ctx.params.code, ctx.params.res) };
				},
			},

			/** Internal: size of the index and the nearby cache's hit rate on this replica. */
			stats: {
				visibility: "public",
				params: {},
				handler(this: This) {
					const { hits, misses } = this.cacheStats;
					return {
						ready: !!this.read, points: this.read?.size ?? 0, resolution: this.read?.index.res ?? null,
						cells: this.read?.index.cellCount ?? 0, cache: { hits, misses, hitRate: hits + misses ? hits / (hits + misses) : 0 },
					};
				},
			},
		},

		events: {
			"merchants.point.created": { handler(this: This, ctx: Context<PointChangedEvent>) { return this.applyPoint(ctx.params.point); } },
			"merchants.point.updated": { handler(this: This, ctx: Context<PointChangedEvent>) { return this.applyPoint(ctx.params.point); } },
			"merchants.cabinet.registered": { handler(this: This, ctx: Context<PointChangedEvent>) { return this.applyPoint(ctx.params.point); } },
			"merchants.door.updated": { handler(this: This, ctx: Context<PointChangedEvent>) { return this.applyPoint(ctx.params.point); } },
			// Availability from the door actors (broadcast: every replica holds it all).
			"doors.state.changed": { handler(this: This, ctx: Context<DoorStateEvent>) { return this.applyDoor(ctx.params); } },
			// A node (re)joined: broadcasts sent while we were unknown to it may be lost.
			"$node.connected": { handler(this: This) { void this.catchUp(); } },
			// The door actors came up after the index was built: load what they hold.
			"$services.changed": { handler(this: This) { if (this.read && !this.takenLoaded && doorsNodes(this.broker).length) void this.loadTakenDoors(); } },
			"merchants.city.created": {
				handler(this: This, ctx: Context<{ city: { code: string } }>) {
					this.cities.add(ctx.params.city.code);
				},
			},
		},

		methods: {
			/** /ready: the point index is loaded (until then every geo read answers 503). */
			checkReady(this: This) {
				if (!this.read) throw new Error("the point index is still loading");
			},

			model(this: This): GeoReadModel {
				if (!this.read) throw serviceUnavailable("The geo index is still loading", { retryAfter: 1 });
				return this.read;
			},

			async loadSnapshot(this: This) {
				const started = Date.now();
				for (const c of await this.broker.call<{ code: string }[]>("merchants.cities")) this.cities.add(c.code);
				const all: PointView[] = [];
				this.syncedUntil = Date.now();
				for (let after: string | undefined; ; ) {
					const page: PointView[] = await this.broker.call("merchants.pointsPage", { after, limit: SNAPSHOT_PAGE }, { timeout: 60_000 });
					all.push(...page);
					if (page.length < SNAPSHOT_PAGE) break;
					after = page[page.length - 1].id;
				}
				const active = all.filter(p => p.status === "active");
				const read = new GeoReadModel(chooseResolution(active));
				for (const p of all) read.apply(p);
				for (const p of this.pending.values()) read.apply(p);
				for (const d of this.pendingDoors.values()) read.applyDoor(d);
				this.pendingDoors.clear();
				read.pack();
				this.pending.clear();
				this.read = read;
				if (doorsNodes(this.broker).length) await this.loadTakenDoors();
				this.logger.info(`Geo index ready: ${read.size} active points at H3 resolution ${read.index.res} (${read.index.cellCount} cells) in ${Date.now() - started} ms`);
			},

			async applyPoint(this: This, p: PointView) {
				if (!this.read) return keepNewest(this.pending, p.id, p);
				const change = this.read.apply(p);
				if (change) await this.cleanCaches([change.before, change.after]);
			},

			/** The doors taken right now (reserved, holding a bag, open, faulty); later changes come as events. */
			async loadTakenDoors(this: This) {
				if (this.takenLoaded) return;
				this.takenLoaded = true;
				try {
					for (const d of await this.broker.call<DoorStateEvent[], object>("doors.taken", {}, { timeout: 30_000 })) await this.applyDoor(d);
				} catch (err: any) {
					this.takenLoaded = false; // tried again when the doors service changes
					this.logger.warn(`Door availability not loaded yet (${err.message})`);
				}
			},

			async applyDoor(this: This, d: DoorStateEvent) {
				if (!this.read) return keepNewest(this.pendingDoors, d.doorId, d);
				const change = this.read.applyDoor(d);
				if (!change) return;
				// Rows read free doors live: only size-filtered sets whose membership may change are stale.
				const crossed = SIZES.filter(s => change.before.available[s] > 0 !== change.after.available[s] > 0);
				await this.cleanCaches([change.before, change.after], crossed);
			},

			/** Drops the cached answers a change at these entries may have made stale. */
			async cleanCaches(this: This, entries: (GeoEntry | undefined)[], nearbyFilters?: readonly string[]) {
				const places = entries.filter((e): e is GeoEntry => !!e);
				if (nearbyFilters?.length !== 0) for (const e of places) this.nearbyCache.changedAt(e.lat, e.lng, nearbyFilters);
				const cacher = this.broker.cacher;
				if (!cacher) return;
				const cities = new Set(places.map(e => e.cityCode));
				await Promise.all([
					// Moleculer 0.15's default keygen quotes string params: the cityMap key is `geo.cityMap:"SH"|7`.
					...[...cities].map(city => cacher.clean(`geo.cityMap:"${city}"|*`)),
				]);
			},

			/** Applies every point the catalog changed since shortly before our newest change; versions skip what we have. */
			catchUp(this: This) {
				if (!this.read || this.catchingUp) return this.catchingUp ?? Promise.resolve();
				this.catchingUp = (async () => {
					let since = this.syncedUntil - CATCH_UP_OVERLAP_MS;
					let afterId: string | undefined;
					for (let round = 0; round < 1000; round++) {
						const rows: PointView[] = await this.broker.call("merchants.pointsChangedSince", { since: new Date(since), afterId, limit: SNAPSHOT_PAGE });
						for (const p of rows) await this.applyPoint(p);
						if (rows.length === 0) break;
						// The cursor moves only here, so an event that overtook a lost one cannot skip it.
						const last = rows[rows.length - 1];
						this.syncedUntil = Math.max(this.syncedUntil, Date.parse(last.updatedAt));
						if (rows.length < SNAPSHOT_PAGE) break;
						// Cursor (updatedAt, id): pages full of one timestamp still move on.
						since = Date.parse(last.updatedAt);
						afterId = last.id;
					}
				})()
					.catch(err => this.logger.warn(`Catch-up with the catalog failed: ${err.message}`))
					.finally(() => (this.catchingUp = undefined));
				return this.catchingUp;
			},

			countCache(this: This, result: "hit" | "miss") {
				if (result === "hit") {
					this.cacheStats.hits++;
					this.nearbySeries.hit.add(1);
				} else {
					this.cacheStats.misses++;
					this.nearbySeries.miss.add(1);
				}
			},

			page<T>(rows: T[], page: number, pageSize: number) {
				return { rows: rows.slice((page - 1) * pageSize, page * pageSize), total: rows.length, page, pageSize };
			},

			ensureCity(this: This, code: string) {
				if (!this.cities.has(code)) throw notFound("City", { code });
			},
		},

		created(this: This) {
			this.pending = new Map();
			this.pendingDoors = new Map();
			this.cities = new Set();
			this.cacheStats = { hits: 0, misses: 0 };
			this.nearbyCache = new NearbyCache(NEARBY_CACHE_ENTRIES, NEARBY_CACHE_CANDIDATES);
			this.syncedUntil = 0;
			const cache = meter(this.broker, BUSINESS_METRICS.nearbyCache);
			this.nearbySeries = { hit: cache.bind({ result: "hit" }), miss: cache.bind({ result: "miss" }), latency: meter(this.broker, BUSINESS_METRICS.nearbyLatency).bind() };
		},

		async started(this: This) {
			await this.loadSnapshot();
			this.catchUpTimer = setInterval(() => void this.catchUp(), CATCH_UP_EVERY_MS);
			this.catchUpTimer.unref();
		},

		async stopped(this: This) {
			clearInterval(this.catchUpTimer);
			await this.catchingUp;
		},
	};
}

export { MAP_RESOLUTIONS };
