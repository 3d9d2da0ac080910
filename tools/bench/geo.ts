/**
 * geo: "nearest 20 within a radius" over 100 000 storage points, one data set
 * and one set of caller positions for every method.
 *
 * In this process, per radius (500 m, 2 km, 5 km):
 *   our index        PointIndex (services/geo/point-index.ts) at the resolution chooseResolution picks
 *   geokdbush        around() on a kdbush index
 *   Redis            GEOSEARCH … BYRADIUS … ASC COUNT 20 on the real Redis, one at a time and pipelined
 *   brute force      bruteForceNearby, on a subset (it is slow)
 * Every method is first checked against brute force; only then is it timed.
 *
 * Over HTTP (unless --skip-http): the fleet is seeded into NeDB files
 * (tools/seed.ts, same seed, so the same points), the platform started on
 * them, and autocannon sends GET /api/v1/points/nearby from a mix of callers
 * (generateCallers: at stations, sights and points; --mix spread asks the
 * in-process positions at every radius instead) — embedded, with geo on its
 * own node over NATS, and the same with the Redis cacher. The nearby cache's
 * hit rate comes from the geo_nearby_cache counter of the node running geo.
 *
 * Results go to bench-results/geo.json.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { copyFile, readdir } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import v8 from "node:v8";
import vm from "node:vm";
import IORedis, { type Redis } from "ioredis";
import KDBush from "kdbush";
import * as geokdbush from "geokdbush";
import { bruteForceNearby, chooseResolution, EARTH_RADIUS_M, greatCircleDistance, PointIndex, type NearbyHit } from "../../services/geo/point-index";
import { generatePoints, HOT_CITIES, mulberry32, type GeneratedPoint, type Rng } from "../../services/merchants/fleet-generator";
import { parseFlags, positiveInt, UsageError } from "./cli";
import { LOAD_FLAGS, LOAD_USAGE, loadOptionsFrom, cpuText, machineBusyPct, runLoad, runProblems, STEAL_WARN_PCT, type LoadOptions, type LoadResult, type Request } from "./load";
import { canConnect, failure, freePort, REPO_ROOT, Scope, waitForHttp, type EnvOverrides, type Proc } from "./procs";
import { formatTable } from "./table";
import { printGoals, writeReport, type Goal } from "./report";

export const usage = `npm run bench -- geo [options]

Nearest 20 within 500 m / 2 km / 5 km over 100 000 points: our H3 index vs
geokdbush, Redis GEOSEARCH and brute force in-process, then
GET /api/v1/points/nearby over HTTP (embedded, over NATS, with the Redis cacher).

options:
  --points N        points (default 100000)
  --queries N       caller positions, each asked at every radius (default 10000)
  --seed N          PRNG seed of the points (as npm run seed) and positions (default 42)
  --skip-http       only the in-process part
  --skip-in-process only the HTTP part (its answers are still checked against brute force)
  --targets LIST    HTTP targets, comma-separated (default embedded,nats,nats+redis)
  --mix M           who asks over HTTP: callers (at stations, sights and points; default) or
                    spread (every position at every radius: the cache's worst case)
${LOAD_USAGE}
  --nats URL        NATS server for the nats targets (default nats://127.0.0.1:4222)
  --redis URL       Redis for GEOSEARCH and the cacher target (default redis://127.0.0.1:6379)`;

const API = "/api/v1";
const RADII = [500, 2000, 5000] as const;
const LIMIT = 20;
/** Queries per radius checked against brute force before anything is timed; also brute force's timed subset. */
const CHECK_SAMPLE = 200;
/** Untimed queries per method before its timed pass (spread over the radii). */
const WARMUP_QUERIES = 3000;
const REDIS_PIPELINE = 100;
const REDIS_LOAD_BATCH = 5000;
/** Positions whose HTTP answers are checked (at every radius) before a target is loaded. */
const HTTP_CHECK_POSITIONS = 10;

const GOALS = { vsRedis: 3, memoryMb: 100 };
/** Issue 13: embedded ≥ 5 000 rps with p99 ≤ 20 ms; geo on its own node over NATS ≥ 3 000 rps with p99 ≤ 30 ms (also with the Redis cacher). */
const HTTP_GOALS: Record<string, { rps: number; p99Ms: number }> = { embedded: { rps: 5000, p99Ms: 20 }, nats: { rps: 3000, p99Ms: 30 }, "nats+redis": { rps: 3000, p99Ms: 30 } };
const BUSY_WARN_PCT = 25;

/** geokdbush measures in km on a sphere of 6371 km; Redis in m on one of 6 372 797.560856 m (geohash_helper.c). */
const GEOKDBUSH_EARTH_KM = 6371;
const REDIS_EARTH_M = 6_372_797.560856;
/**
 * Radii are passed as the same angle on each library's sphere, so that every
 * method answers the same question (in metres on ours); otherwise Redis would
 * leave out up to 1.4 m of a 5 km circle's rim.
 */
const kdRadiusKm = (m: number) => (m / EARTH_RADIUS_M) * GEOKDBUSH_EARTH_KM;
const redisRadiusM = (m: number) => (m / EARTH_RADIUS_M) * REDIS_EARTH_M;

/** Redis keeps coordinates as a 52-bit geohash (cells of ≈ 0.3 × 0.6 m), so its distances are off by up to ~0.5 m. */
const REDIS_TOLERANCE_M = 1;
/** geokdbush's formula differs from ours in the last bits only. */
const GEOKDBUSH_TOLERANCE_REL = 1e-6;

// Rate limits are production protection, not something this benchmark measures.
const PLATFORM_ENV: EnvOverrides = {
	LOG_LEVEL: "warn",
	RATE_LIMIT_IP: "1000000000",
	RATE_LIMIT_USER: "1000000000",
	RATE_LIMIT_AUTH: "1000000000",
	DEMO_SEED: "false",
	// The seeded NeDB files, whatever the calling shell has set.
	MONGO_URI: undefined,
	REDIS_URL: undefined,
	HEALTH_PORT: undefined,
	METRICS_PORT: undefined,
};

// ---------------------------------------------------------------------------
// Positions

interface Position {
	lat: number;
	lng: number;
}

const KM_PER_DEG_LAT = 110.574;
const kmPerDegLng = (lat: number) => 111.32 * Math.cos((lat * Math.PI) / 180);
const round6 = (x: number) => Math.round(x * 1e6) / 1e6;

function gaussian(rng: Rng): number {
	const u = 1 - rng();
	return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng());
}

function pickWeighted<T extends { weight: number }>(rng: Rng, list: readonly T[]): T {
	let r = rng() * list.reduce((s, x) => s + x.weight, 0);
	for (const item of list) {
		r -= item.weight;
		if (r < 0) return item;
	}
	return list[list.length - 1];
}

/** Log-uniform between a and b: as many callers a few hundred metres off as a few km off. */
const logUniform = (rng: Rng, a: number, b: number) => a * Math.exp(rng() * Math.log(b / a));

function jitter(rng: Rng, lat: number, lng: number, sigmaKm: number): Position {
	return { lat: lat + (gaussian(rng) * sigmaKm) / KM_PER_DEG_LAT, lng: lng + (gaussian(rng) * sigmaKm) / kmPerDegLng(lat) };
}

/** Uniformly anywhere within 25 km of a hot city's centre (cities by weight). */
function anywhereInACity(rng: Rng): Position {
	const city = pickWeighted(rng, HOT_CITIES);
	const r = 25 * Math.sqrt(rng());
	const a = 2 * Math.PI * rng();
	return { lat: city.lat + (r * Math.sin(a)) / KM_PER_DEG_LAT, lng: city.lng + (r * Math.cos(a)) / kmPerDegLng(city.lat) };
}

/**
 * Where people ask from: they stand where the points are. 60 % near a random
 * point and 30 % near a district centre (a station, a business district), each
 * 0.2–4 km off, and 10 % anywhere within 25 km of a city centre. Rounded to
 * 6 decimals, like a phone's position, so the HTTP query strings carry exactly
 * the positions asked in-process.
 */
function generatePositions(points: readonly GeneratedPoint[], count: number, seed: number): Position[] {
	const rng = mulberry32(Math.imul(seed ^ 0x5bd1e995, 0x9e3779b1) >>> 0);
	const out: Position[] = [];
	for (let i = 0; i < count; i++) {
		const kind = rng();
		let p: Position;
		if (kind < 0.6) {
			const near = points[(rng() * points.length) | 0];
			p = jitter(rng, near.lat, near.lng, logUniform(rng, 0.2, 3));
		} else if (kind < 0.9) {
			const centre = pickWeighted(rng, pickWeighted(rng, HOT_CITIES).subCentres);
			p = jitter(rng, centre.lat, centre.lng, logUniform(rng, 0.3, 4));
		} else {
			p = anywhereInACity(rng);
		}
		out.push({ lat: round6(p.lat), lng: round6(p.lng) });
	}
	return out;
}

/**
 * Who asks GET /points/nearby (the HTTP part's default mix, "callers"): people
 * with luggage, so mostly at the places they arrive at or visit. 70 % stand
 * within walking distance of a sub-centre (0.1–0.8 km off; stations and
 * airports three times as likely as districts), 20 % near a storage point
 * (a hotel, a shop; 0.2–1 km off) and 10 % anywhere within 25 km of a city
 * centre. The radius is the app's default (2 km) for 60 % of them, 500 m or
 * 5 km for 20 % each. Every request has a position of its own (6 decimals).
 * "spread" (--mix spread) asks every position of generatePositions at every
 * radius instead: callers as spread out as the points, the cache's worst case.
 */
interface Ask extends Position {
	radius: (typeof RADII)[number];
}

function generateCallers(points: readonly GeneratedPoint[], count: number, seed: number): Ask[] {
	const rng = mulberry32(Math.imul(seed ^ 0x27d4eb2f, 0x85ebca6b) >>> 0);
	const spots = HOT_CITIES.flatMap(city => city.subCentres.map(c => ({ ...c, weight: city.weight * c.weight * (c.hub ? 3 : 1) })));
	const out: Ask[] = [];
	for (let i = 0; i < count; i++) {
		const kind = rng();
		let p: Position;
		if (kind < 0.7) {
			const spot = pickWeighted(rng, spots);
			p = jitter(rng, spot.lat, spot.lng, logUniform(rng, 0.1, 0.8));
		} else if (kind < 0.9) {
			const near = points[(rng() * points.length) | 0];
			p = jitter(rng, near.lat, near.lng, logUniform(rng, 0.2, 1));
		} else {
			p = anywhereInACity(rng);
		}
		const which = rng();
		out.push({ lat: round6(p.lat), lng: round6(p.lng), radius: which < 0.6 ? 2000 : which < 0.8 ? 500 : 5000 });
	}
	return out;
}

const MIXES = ["callers", "spread"] as const;
type Mix = (typeof MIXES)[number];

// ---------------------------------------------------------------------------
// Measuring

interface Timing {
	queries: number;
	qps: number;
	p50Us: number;
	p99Us: number;
	/** Per-query latencies, kept only to merge interleaved slices (not written out). */
	latMs?: Float64Array;
}

function summarize(latMs: Float64Array, totalMs: number): Timing {
	const sorted = latMs.slice().sort();
	const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))] * 1000;
	return { queries: latMs.length, qps: latMs.length / (totalMs / 1000), p50Us: at(0.5), p99Us: at(0.99), latMs };
}

const INTERLEAVE_ROUNDS = 10;

/** One timing from several slices: total rate, and percentiles over every query's latency. */
function mergeTimings(parts: Timing[]): Timing {
	const lat = Float64Array.from(parts.flatMap(p => Array.from(p.latMs ?? [])));
	const totalMs = parts.reduce((sum, p) => sum + (p.queries / p.qps) * 1000, 0);
	return summarize(lat, totalMs);
}

/** Keeps results alive so that no call can be optimised away. */
let sink = 0;

function timeSync(n: number, query: (i: number) => { length: number }): Timing {
	const lat = new Float64Array(n);
	const t0 = performance.now();
	for (let i = 0; i < n; i++) {
		const s = performance.now();
		sink += query(i).length;
		lat[i] = performance.now() - s;
	}
	return summarize(lat, performance.now() - t0);
}

async function timeAsync(n: number, query: (i: number) => Promise<unknown[]>): Promise<Timing> {
	const lat = new Float64Array(n);
	const t0 = performance.now();
	for (let i = 0; i < n; i++) {
		const s = performance.now();
		sink += (await query(i)).length;
		lat[i] = performance.now() - s;
	}
	return summarize(lat, performance.now() - t0);
}

/** Batches sent as one pipeline each: a query's latency is its batch's round trip. */
async function timeBatches(n: number, batch: number, run: (from: number, to: number) => Promise<unknown[]>): Promise<Timing> {
	const lat = new Float64Array(n);
	const t0 = performance.now();
	for (let from = 0; from < n; from += batch) {
		const to = Math.min(n, from + batch);
		const s = performance.now();
		sink += (await run(from, to)).length;
		lat.fill(performance.now() - s, from, to);
	}
	return summarize(lat, performance.now() - t0);
}

/** A garbage collector to call, also when node was started without --expose-gc. */
function collector(): () => void {
	const exposed = (globalThis as { gc?: () => void }).gc;
	if (typeof exposed === "function") return exposed;
	v8.setFlagsFromString("--expose-gc");
	return vm.runInNewContext("gc") as () => void;
}

/** Live memory after a full collection: JS heap plus ArrayBuffers and other memory outside it. */
function liveBytes(gc: () => void): number {
	gc();
	gc();
	const m = process.memoryUsage();
	return m.heapUsed + m.external;
}

const MB = 2 ** 20;
const mb = (bytes: number) => `${(bytes / MB).toFixed(1)} MB`;

// ---------------------------------------------------------------------------
// Checking

interface Mismatch {
	method: string;
	radius: number;
	query: number;
	problem: string;
}

/**
 * Whether `got` is brute force's answer: the same ids in the same order, or,
 * within `tol(d)` metres, the same distances position by position (orders may
 * differ only between near-ties) and extra or missing points only on the rim.
 */
function compareToReference(ref: NearbyHit<GeneratedPoint>[], got: GeneratedPoint[], q: Position, radius: number, tol: (d: number) => number): Comparison {
	if (got.length === ref.length && got.every((p, i) => p.id === ref[i].point.id)) return { exact: true };
	const bad = (problem: string): Comparison => ({ exact: false, problem });
	const seen = new Set<string>();
	for (const p of got) {
		if (seen.has(p.id)) return bad(`${p.id} twice`);
		seen.add(p.id);
	}
	const d = got.map(p => greatCircleDistance(q.lat, q.lng, p.lat, p.lng));
	const n = Math.min(ref.length, got.length);
	let maxDeltaM = 0;
	for (let i = 0; i < n; i++) {
		maxDeltaM = Math.max(maxDeltaM, Math.abs(d[i] - ref[i].distance));
		if (Math.abs(d[i] - ref[i].distance) > tol(Math.max(d[i], ref[i].distance))) {
			return bad(`#${i + 1}: expected ${ref[i].point.id} at ${ref[i].distance.toFixed(3)} m, got ${got[i].id} at ${d[i].toFixed(3)} m`);
		}
	}
	for (let i = n; i < ref.length; i++) {
		if (ref[i].distance < radius - tol(radius)) return bad(`${got.length} hits, brute force ${ref.length}: missing #${i + 1} ${ref[i].point.id} at ${ref[i].distance.toFixed(3)} m`);
	}
	for (let i = n; i < got.length; i++) {
		if (d[i] < radius - tol(radius) || d[i] > radius + tol(radius)) return bad(`${got.length} hits, brute force ${ref.length}: extra #${i + 1} ${got[i].id} at ${d[i].toFixed(3)} m`);
	}
	return { exact: false, maxDeltaM };
}

interface Comparison {
	exact: boolean;
	problem?: string;
	/** Largest distance difference, position by position, between tolerated answers (m). */
	maxDeltaM?: number;
}

// ---------------------------------------------------------------------------
// In-process part

interface MethodRow extends Timing {
	method: string;
	radius: number;
	/** Queries per second relative to our index at the same radius. */
	ratio: number;
	note?: string;
}

interface InProcessResult {
	resolution: number;
	cells: number;
	buildMs: number;
	chooseResolutionMs: number;
	indexBytes: number;
	indexBytesAfterQueries: number;
	pointsBytes: number;
	kdbush: { buildMs: number; bytes: number };
	redisLoadMs: number;
	check: { agree: boolean; perMethod: Record<string, { exact: number; tolerated: number; checked: number; maxDeltaM: number }>; mismatches: Mismatch[] };
	rows: MethodRow[];
}

const OURS = "our index";
const KD = "geokdbush";
const REDIS_ONE = "Redis one-at-a-time";
const REDIS_PIPE = `Redis pipelined ×${REDIS_PIPELINE}`;
const BRUTE = "brute force";

const radiusText = (m: number) => (m >= 1000 ? `${m / 1000} km` : `${m} m`);

async function runInProcess(opts: { points: number; queries: number; seed: number; redisUrl: string }, log: (msg: string) => void): Promise<InProcessResult> {
	const gc = collector();
	const beforePoints = liveBytes(gc);
	let t = performance.now();
	const points = generatePoints(opts.points, opts.seed);
	const pointsBytes = liveBytes(gc) - beforePoints;
	const positions = generatePositions(points, opts.queries, opts.seed);
	const byIndex = (i: number) => points[i];
	log(`${opts.points} points and ${opts.queries} positions generated in ${Math.round(performance.now() - t)} ms (the points take ${mb(pointsBytes)})`);

	const sample = Math.min(CHECK_SAMPLE, positions.length);
	const query = (i: number, radius: number) => ({ lat: positions[i].lat, lng: positions[i].lng, radius, limit: LIMIT });

	// Brute force: the reference answers for the check, timed on the way.
	log(`brute force on the first ${sample} positions per radius (the reference answers)…`);
	for (let i = 0; i < Math.min(20, sample); i++) bruteForceNearby(points, query(i, RADII[i % RADII.length]));
	const reference = new Map<number, NearbyHit<GeneratedPoint>[][]>();
	const bruteTimings = new Map<number, Timing>();
	for (const radius of RADII) {
		const answers: NearbyHit<GeneratedPoint>[][] = new Array(sample);
		bruteTimings.set(radius, timeSync(sample, i => (answers[i] = bruteForceNearby(points, query(i, radius)))));
		reference.set(radius, answers);
	}

	// Our index: build time and memory, nothing else allocated in between.
	const baseline = liveBytes(gc);
	t = performance.now();
	const resolution = chooseResolution(points);
	const chooseResolutionMs = performance.now() - t;
	const index = new PointIndex<GeneratedPoint>(resolution);
	for (const p of points) index.upsert(p);
	index.pack(); // as the geo service does after its snapshot
	const buildMs = performance.now() - t;
	const indexBytes = liveBytes(gc) - baseline;
	log(`our index: H3 resolution ${resolution} (chooseResolution), ${index.cellCount} cells, built in ${Math.round(buildMs)} ms ` +
		`(choosing the resolution ${Math.round(chooseResolutionMs)} ms), ${mb(indexBytes)}`);

	// geokdbush.
	const kdBefore = liveBytes(gc);
	t = performance.now();
	const kd = new KDBush(points.length);
	for (const p of points) kd.add(p.lng, p.lat);
	kd.finish();
	const kdBuildMs = performance.now() - t;
	const kdBytes = liveBytes(gc) - kdBefore;
	log(`geokdbush: built in ${Math.round(kdBuildMs)} ms, ${mb(kdBytes)}`);

	// Redis, under a key of our own that goes again at the end.
	const { hostname, port } = new URL(opts.redisUrl);
	if (!(await canConnect(hostname, Number(port || 6379)))) throw new Error(`no Redis at ${opts.redisUrl} (start one, or pass --redis URL)`);
	const redis: Redis = new IORedis(opts.redisUrl, { connectionName: "bench-geo", maxRetriesPerRequest: 2, connectTimeout: 2000, lazyConnect: true });
	await redis.connect();
	const key = `bench:geo:${os.hostname()}:${process.pid}:${Date.now().toString(36)}`;
	try {
		t = performance.now();
		for (let from = 0; from < points.length; from += REDIS_LOAD_BATCH) {
			const args: (string | number)[] = [];
			for (let i = from; i < Math.min(points.length, from + REDIS_LOAD_BATCH); i++) args.push(points[i].lng, points[i].lat, i);
			await redis.geoadd(key, ...args);
		}
		const redisLoadMs = performance.now() - t;
		const stored = await redis.zcard(key);
		if (stored !== points.length) throw new Error(`Redis key ${key} holds ${stored} members after GEOADD, expected ${points.length}`);
		log(`Redis: ${stored} members GEOADDed to ${key} in ${Math.round(redisLoadMs)} ms`);

		// Members are point indices; WITHDIST answers [member, distance] pairs.
		const geosearchArgs = (i: number, radius: number) =>
			["FROMLONLAT", positions[i].lng, positions[i].lat, "BYRADIUS", redisRadiusM(radius), "m", "ASC", "COUNT", LIMIT, "WITHDIST"] as const;
		const redisSearch = async (i: number, radius: number) => (await redis.geosearch(key, ...geosearchArgs(i, radius))) as [string, string][];
		const redisBatch = async (from: number, to: number, radius: number) => {
			const pipe = redis.pipeline();
			for (let i = from; i < to; i++) pipe.geosearch(key, ...geosearchArgs(i, radius));
			const replies = (await pipe.exec()) ?? [];
			const failed = replies.find(([err]) => err);
			if (failed) throw failed[0];
			return replies;
		};
		const kdAround = (i: number, radius: number) => geokdbush.around(kd, positions[i].lng, positions[i].lat, LIMIT, kdRadiusKm(radius));

		// Every method must answer what brute force answers before it is timed.
		log(`checking every method against brute force on ${sample} positions × ${RADII.length} radii…`);
		const mismatches: Mismatch[] = [];
		const perMethod: InProcessResult["check"]["perMethod"] = {};
		const record = (method: string, radius: number, i: number, r: Comparison) => {
			const m = (perMethod[method] ??= { exact: 0, tolerated: 0, checked: 0, maxDeltaM: 0 });
			m.checked++;
			if (r.problem) mismatches.push({ method, radius, query: i, problem: r.problem });
			else if (r.exact) m.exact++;
			else {
				m.tolerated++;
				m.maxDeltaM = Math.max(m.maxDeltaM, r.maxDeltaM ?? 0);
			}
		};
		for (const radius of RADII) {
			const refs = reference.get(radius)!;
			for (let i = 0; i < sample; i++) {
				const q = positions[i];
				const ref = refs[i];
				// Ours must be exact: same ids, same order, same distances to the bit.
				const ours = index.nearby(query(i, radius));
				const oursExact = ours.length === ref.length && ours.every((h, j) => h.point.id === ref[j].point.id && h.distance === ref[j].distance);
				record(OURS, radius, i, oursExact ? { exact: true } : { exact: false, problem: compareToReference(ref, ours.map(h => h.point), q, radius, () => 0).problem ?? "same ids, different distances" });
				record(KD, radius, i, compareToReference(ref, kdAround(i, radius).map(byIndex), q, radius, d => GEOKDBUSH_TOLERANCE_REL * d));
				const fromRedis = (await redisSearch(i, radius)).map(([member]) => byIndex(Number(member)));
				record(REDIS_ONE, radius, i, compareToReference(ref, fromRedis, q, radius, () => REDIS_TOLERANCE_M));
			}
			// The pipelined path sends the same command; check its replies too.
			const piped = await redisBatch(0, sample, radius);
			piped.forEach(([, reply], i) => {
				const got = (reply as [string, string][]).map(([member]) => byIndex(Number(member)));
				record(REDIS_PIPE, radius, i, compareToReference(refs[i], got, positions[i], radius, () => REDIS_TOLERANCE_M));
			});
		}
		const check = { agree: mismatches.length === 0, perMethod, mismatches };
		const result: InProcessResult = {
			resolution, cells: index.cellCount, buildMs, chooseResolutionMs, indexBytes, indexBytesAfterQueries: indexBytes, pointsBytes,
			kdbush: { buildMs: kdBuildMs, bytes: kdBytes }, redisLoadMs, check, rows: [],
		};
		if (!check.agree) return result;

		// Timing: warm-up over every radius, then one pass over all positions per radius.
		const n = positions.length;
		const warm = Math.min(WARMUP_QUERIES, n * RADII.length);
		const warmRadius = (w: number) => RADII[w % RADII.length];
		const timings = new Map<string, Map<number, Timing>>();
		const put = (method: string, radius: number, timing: Timing) => {
			if (!timings.has(method)) timings.set(method, new Map());
			timings.get(method)!.set(radius, timing);
		};

		// The two in-process methods run interleaved (slices of positions, ours then geokdbush,
		// per radius, round after round) so that the machine's noise falls on both alike.
		log(`timing ${OURS} and ${KD} interleaved (${warm} warm-up queries each, then ${n} per radius in ${INTERLEAVE_ROUNDS} rounds)…`);
		for (let w = 0; w < warm; w++) index.nearby(query(w % n, warmRadius(w)));
		for (let w = 0; w < warm; w++) kdAround(w % n, warmRadius(w));
		const beforeQueries = liveBytes(gc);
		for (const radius of RADII) {
			const ours: Timing[] = [];
			const kd: Timing[] = [];
			const slice = Math.ceil(n / INTERLEAVE_ROUNDS);
			for (let from = 0; from < n; from += slice) {
				const to = Math.min(n, from + slice);
				ours.push(timeSync(to - from, i => index.nearby(query(from + i, radius))));
				kd.push(timeSync(to - from, i => kdAround(from + i, radius)));
			}
			put(OURS, radius, mergeTimings(ours));
			put(KD, radius, mergeTimings(kd));
		}
		// Rings and cell centres the queries remembered (bounded caches) belong to the index too.
		result.indexBytesAfterQueries = indexBytes + Math.max(0, liveBytes(gc) - beforeQueries);

		log(`timing ${REDIS_ONE}…`);
		for (let w = 0; w < Math.min(warm, 1000); w++) await redisSearch(w % n, warmRadius(w));
		for (const radius of RADII) put(REDIS_ONE, radius, await timeAsync(n, i => redisSearch(i, radius)));

		log(`timing ${REDIS_PIPE}…`);
		for (let w = 0; w < Math.min(warm, 1000); w += REDIS_PIPELINE) await redisBatch(w % n, Math.min(n, (w % n) + REDIS_PIPELINE), warmRadius(w / REDIS_PIPELINE));
		for (const radius of RADII) put(REDIS_PIPE, radius, await timeBatches(n, REDIS_PIPELINE, (from, to) => redisBatch(from, to, radius)));

		for (const radius of RADII) put(BRUTE, radius, bruteTimings.get(radius)!);

		for (const [method, byRadius] of timings) {
			for (const [radius, timing] of byRadius) {
				const ours = timings.get(OURS)!.get(radius)!;
				const note = method === BRUTE ? `first ${sample} of ${n} positions` : method === REDIS_PIPE ? `latency = its batch's round trip` : undefined;
				const { latMs: _perQuery, ...figures } = timing;
				result.rows.push({ method, radius, ...figures, ratio: timing.qps / ours.qps, ...(note ? { note } : {}) });
			}
		}
		return result;
	} finally {
		await redis.del(key).catch(() => undefined);
		await redis.quit().catch(() => undefined);
	}
}

// ---------------------------------------------------------------------------
// HTTP part

type TargetName = "embedded" | "nats" | "nats+redis";

interface Started {
	base: string;
	/** Prometheus endpoint of the node running geo. */
	metricsUrl: string;
	procs: Proc[];
	/** Redis cacher and counter keys of this target start with it. */
	namespace: string;
}

interface TargetContext {
	natsUrl: string;
	redisUrl: string;
	/** A copy of the seeded NeDB files for this target. */
	dataDir: string;
	namespace: string;
}

interface Target {
	name: TargetName;
	redis: boolean;
	start(scope: Scope, ctx: TargetContext): Promise<Started>;
}

/** Loading 100 000 points (and their 110 000 cabinets) from NeDB takes 20–40 s on a small machine. */
const START_TIMEOUT_MS = 240_000;

const natsTarget = (name: TargetName, redis: boolean): Target => ({
	name,
	redis,
	async start(scope, ctx) {
		const mesh = { ...PLATFORM_ENV, TRANSPORTER: ctx.natsUrl, NAMESPACE: ctx.namespace, REDIS_URL: redis ? ctx.redisUrl : undefined };
		// As in production: the catalog (with its large NeDB heap) on one node, geo on its own.
		const catalog = scope.startTs("catalog", "server.ts", {
			...mesh,
			SERVICES: "users,merchants",
			DATA_DIR: ctx.dataDir,
			MQTT_PORT: String(await freePort()),
			HEALTH_PORT: String(await freePort()),
		});
		const metricsPort = await freePort();
		const geo = scope.startTs("geo", "server.ts", {
			...mesh,
			SERVICES: "geo",
			DATA_DIR: await scope.tempDir("bench-geo-geo-"),
			MQTT_PORT: String(await freePort()),
			HEALTH_PORT: String(await freePort()),
			METRICS_PORT: String(metricsPort),
		});
		const port = await freePort();
		const api = scope.startTs("api", "server.ts", {
			...mesh,
			SERVICES: "api",
			PORT: String(port),
			MQTT_PORT: String(await freePort()),
			DATA_DIR: await scope.tempDir("bench-geo-api-"),
		});
		return { base: `http://127.0.0.1:${port}`, metricsUrl: `http://127.0.0.1:${metricsPort}/metrics`, procs: [api, geo, catalog], namespace: ctx.namespace };
	},
});

const TARGETS: Target[] = [
	{
		name: "embedded",
		redis: false,
		async start(scope, ctx) {
			const port = await freePort();
			const proc = scope.startTs("platform", "server.ts", {
				...PLATFORM_ENV,
				NAMESPACE: ctx.namespace,
				PORT: String(port),
				MQTT_PORT: String(await freePort()),
				DATA_DIR: ctx.dataDir,
				// Embedded means no mesh, whatever the calling shell has set.
				TRANSPORTER: undefined,
				SERVICES: undefined,
			});
			const base = `http://127.0.0.1:${port}`;
			return { base, metricsUrl: `${base}/metrics`, procs: [proc], namespace: ctx.namespace };
		},
	},
	natsTarget("nats", false),
	natsTarget("nats+redis", true),
];

const nearbyPath = (q: Position, radius: number) => `${API}/points/nearby?lat=${q.lat}&lng=${q.lng}&radius=${radius}&limit=${LIMIT}`;

/** The mix's requests (as many as positions × radii), in a seeded random order (so neighbouring requests are unrelated). */
function requestPaths(mix: Mix, points: readonly GeneratedPoint[], positions: readonly Position[], seed: number): string[] {
	const paths = mix === "spread"
		? positions.flatMap(q => RADII.map(r => nearbyPath(q, r)))
		: generateCallers(points, positions.length * RADII.length, seed).map(a => nearbyPath(a, a.radius));
	const rng = mulberry32((seed ^ 0x2545f491) >>> 0);
	for (let i = paths.length - 1; i > 0; i--) {
		const j = (rng() * (i + 1)) | 0;
		[paths[i], paths[j]] = [paths[j], paths[i]];
	}
	return paths;
}

/** Runs tools/seed.ts into `dataDir`, its progress shown as it goes. */
function seedFleet(dataDir: string, points: number, seed: number): Promise<void> {
	const env: NodeJS.ProcessEnv = { ...process.env, DATA_DIR: dataDir, LOG_LEVEL: "warn" };
	delete env.MONGO_URI;
	const args = ["--import", "tsx", "tools/seed.ts", "--points", String(points), "--cities", "5", "--doors", "24", "--seed", String(seed)];
	const child: ChildProcess = spawn(process.execPath, args, { cwd: REPO_ROOT, env, stdio: ["ignore", "inherit", "inherit"] });
	const kill = () => child.kill("SIGKILL");
	process.on("exit", kill);
	return new Promise((resolve, reject) => {
		child.on("error", reject);
		child.on("exit", (code, signal) => {
			process.off("exit", kill);
			if (code === 0) resolve();
			else reject(new Error(`tools/seed.ts failed (code ${code}, signal ${signal})`));
		});
	});
}

/** A copy of the seeded catalog, so that no target sees what another wrote. */
async function copyCatalog(scope: Scope, seededDir: string, name: string): Promise<string> {
	const dir = await scope.tempDir(`bench-geo-${name.replace(/\W/g, "-")}-`);
	for (const file of await readdir(seededDir)) {
		if (file.endsWith(".db")) await copyFile(path.join(seededDir, file), path.join(dir, file));
	}
	return dir;
}

/** geo_nearby_cache{…,result="hit"|"miss"} summed over the node's lines (Moleculer's Prometheus names). */
async function cacheCounts(url: string): Promise<{ hit: number; miss: number } | undefined> {
	const res = await fetch(url, { signal: AbortSignal.timeout(5_000) });
	const text = await res.text();
	if (res.status !== 200) return undefined;
	const counts = { hit: 0, miss: 0 };
	let found = false;
	for (const line of text.split("\n")) {
		const m = /^geo_nearby_cache(?:_total)?\{([^}]*)\}\s+(\S+)/.exec(line);
		if (!m) continue;
		const result = /(?:^|,)result="(hit|miss)"/.exec(m[1])?.[1] as "hit" | "miss" | undefined;
		if (!result) continue;
		counts[result] += Number(m[2]);
		found = true;
	}
	return found ? counts : undefined;
}

/**
 * A few answers must be right before thousands are counted. The server leaves
 * out the seeded points that are not active (about 2 %), so its answer must be
 * brute force's over all seeded points with a few left out, in the same order.
 */
async function verifyNearby(started: Started, points: readonly GeneratedPoint[], positions: readonly Position[]): Promise<void> {
	for (const q of positions.slice(0, HTTP_CHECK_POSITIONS)) {
		for (const radius of RADII) {
			const p = nearbyPath(q, radius);
			const res = await fetch(`${started.base}${p}`);
			const text = await res.text();
			if (res.status !== 200) throw failure(started.procs, `GET ${p} answered ${res.status}, expected 200: ${text.slice(0, 500)}`);
			const rows = (JSON.parse(text) as { rows?: { id: string; distance: number }[] }).rows;
			if (!Array.isArray(rows) || rows.length > LIMIT) throw failure(started.procs, `GET ${p}: expected at most ${LIMIT} rows, got ${text.slice(0, 300)}`);
			const exact = bruteForceNearby(points, { lat: q.lat, lng: q.lng, radius, limit: 2 * LIMIT });
			let j = 0;
			let skipped = 0;
			for (const row of rows) {
				while (j < exact.length && exact[j].point.id !== row.id) {
					j++;
					skipped++;
				}
				if (j === exact.length) throw failure(started.procs, `GET ${p}: ${row.id} is not among the exact nearest (or out of order): ${rows.map(r => r.id).join(" ")}`);
				if (Math.abs(exact[j].distance - row.distance) > 1) throw failure(started.procs, `GET ${p}: ${row.id} at ${row.distance} m, exactly ${exact[j].distance.toFixed(1)} m`);
				j++;
			}
			if (rows.length < LIMIT) skipped += exact.length - j;
			if (skipped > 5) throw failure(started.procs, `GET ${p}: ${skipped} of the exact nearest left out (${rows.length} rows)`);
		}
	}
}

interface CacheCounts {
	hits: number;
	misses: number;
	hitRate: number;
}

/**
 * One target's figures. The goals are judged on the steady window, measured
 * once every request of the cycle has been asked at least once (as a running
 * service sees it); the window right after the warm-up, while the cache still
 * fills, is reported beside it as `cold`.
 */
interface HttpResult extends LoadResult {
	target: TargetName;
	startSec: number;
	/** Nearby answers from the cache during the steady window (undefined when the metric was not found). */
	cache: CacheCounts | undefined;
	cold: { rps: number; p50: number; p99: number; requests: number; cache: CacheCounts | undefined; cpu: LoadResult["cpu"] };
	busyBeforePct: number;
}

async function benchTarget(target: Target, load: LoadOptions, ctx: Omit<TargetContext, "dataDir" | "namespace"> & { seededDir: string },
	points: readonly GeneratedPoint[], positions: readonly Position[], paths: string[]): Promise<HttpResult> {
	const log = (msg: string) => console.log(`${target.name.padEnd(10)} ${msg}`);
	const busyBefore = await machineBusyPct();
	if (busyBefore > BUSY_WARN_PCT) log(`WARNING: the machine is already busy (${busyBefore} % of a core used by other processes); results will be low`);
	const scope = new Scope();
	// A namespace per run and target: meshes and Redis keys of other runs never mix with ours.
	const namespace = `bench-geo-${process.pid}-${Date.now().toString(36)}-${target.name.replace(/\W/g, "")}`;
	let started: Started | undefined;
	try {
		const dataDir = await copyCatalog(scope, ctx.seededDir, target.name);
		log("starting (loading the catalog takes a while)…");
		const t0 = Date.now();
		started = await target.start(scope, { natsUrl: ctx.natsUrl, redisUrl: ctx.redisUrl, dataDir, namespace });
		// Not /health: nearby answers 503 until geo has loaded every point (and, over NATS, joined).
		await waitForHttp(started.procs, `${started.base}${nearbyPath(positions[0], RADII[0])}`, { timeoutMs: START_TIMEOUT_MS });
		const startSec = (Date.now() - t0) / 1000;
		log(`nearby answers after ${startSec.toFixed(1)} s; checking answers against brute force…`);
		await verifyNearby(started, points, positions);

		let cursor = 0;
		const req: Request & { requests: object[] } = {
			url: `${started.base}${API}/points/nearby`,
			// runLoad hands every field to autocannon: one request, its path taken in turn from the shared list.
			requests: [{ method: "GET", setupRequest: (r: { path: string }) => ({ ...r, path: paths[cursor++ % paths.length] }) }],
		};
		const metricsUrl = started.metricsUrl;
		const measure = async (what: string, opts: LoadOptions & { amount?: number }) => {
			const before = await cacheCounts(metricsUrl);
			const result = await runLoad(req, opts, started!.procs);
			const after = await cacheCounts(metricsUrl);
			let cache: CacheCounts | undefined;
			if (before && after) {
				const hits = after.hit - before.hit;
				const misses = after.miss - before.miss;
				cache = { hits, misses, hitRate: hits + misses ? hits / (hits + misses) : 0 };
			} else log(`WARNING: no geo_nearby_cache counter at ${metricsUrl}`);
			log(`${what}: ${Math.round(result.rps)} rps, p50 ${ms(result.p50)} ms, p99 ${ms(result.p99)} ms, cache hit rate ${cache ? pct(cache.hitRate) : "n/a"}` +
				` (${result.requests} requests; ${cursor} of the cycle's ${paths.length} sent so far)`);
			for (const problem of runProblems(result)) log(`PROBLEM (${what}): ${problem}`);
			return { ...result, cache };
		};
		if (load.warmupSec > 0) {
			log(`warming up ${load.warmupSec} s…`);
			await runLoad(req, { ...load, durationSec: load.warmupSec });
		}
		log(`measuring ${load.durationSec} s from cold at ${load.connections} connections (${paths.length} distinct requests in a cycle)…`);
		const cold = await measure("cold", load);
		if (cursor < paths.length) {
			log(`asking the rest of the cycle once (${paths.length - cursor} requests)…`);
			await runLoad(req, { ...load, amount: paths.length - cursor });
		}
		log(`measuring ${load.durationSec} s steady…`);
		const steady = await measure("steady", load);
		return {
			target: target.name, ...steady, startSec, busyBeforePct: busyBefore,
			cold: { rps: cold.rps, p50: cold.p50, p99: cold.p99, requests: cold.requests, cache: cold.cache, cpu: cold.cpu },
		};
	} finally {
		log("stopping…");
		await scope.close();
		if (target.redis) await deleteKeys(ctx.redisUrl, `${namespace}*`);
	}
}

/** Removes what a target left in Redis (cache entries, rate-limit counters). */
async function deleteKeys(redisUrl: string, pattern: string): Promise<void> {
	const redis = new IORedis(redisUrl, { connectionName: "bench-geo-cleanup", maxRetriesPerRequest: 2, connectTimeout: 2000 });
	try {
		let cursor = "0";
		do {
			const [next, keys] = await redis.scan(cursor, "MATCH", pattern, "COUNT", 1000);
			if (keys.length) await redis.del(...keys);
			cursor = next;
		} while (cursor !== "0");
	} finally {
		await redis.quit().catch(() => undefined);
	}
}

// ---------------------------------------------------------------------------
// Report

/** autocannon resolves whole milliseconds. */
const ms = (n: number) => (n === 0 ? "<1" : String(n));
const pct = (x: number) => `${(x * 100).toFixed(1)} %`;
const us = (n: number) => (n < 10 ? n.toFixed(2) : n < 100 ? n.toFixed(1) : String(Math.round(n)));
const times = (x: number) => `${x >= 0.1 ? x.toFixed(2) : x.toPrecision(2)}×`;



export async function main(argv: string[]): Promise<number> {
	const flags = parseFlags(argv, {
		...LOAD_FLAGS,
		points: { type: "string" },
		queries: { type: "string" },
		seed: { type: "string" },
		"skip-http": { type: "boolean" },
		"skip-in-process": { type: "boolean" },
		targets: { type: "string" },
		mix: { type: "string" },
		nats: { type: "string" },
		redis: { type: "string" },
	});
	const load = loadOptionsFrom(flags);
	const nPoints = positiveInt("points", flags.points, 100_000);
	const nQueries = positiveInt("queries", flags.queries, 10_000);
	const seed = flags.seed === undefined ? 42 : Number(flags.seed);
	if (flags.seed !== undefined && (!/^-?\d+$/.test(flags.seed) || !Number.isSafeInteger(seed))) throw new UsageError(`--seed must be an integer (got "${flags.seed}")`);
	const skipHttp = !!flags["skip-http"];
	const skipInProcess = !!flags["skip-in-process"];
	if (skipHttp && skipInProcess) throw new UsageError("--skip-http and --skip-in-process leave nothing to measure");
	const targetNames = flags.targets?.split(",").map(t => t.trim()) ?? TARGETS.map(t => t.name);
	const unknown = targetNames.filter(n => !TARGETS.some(t => t.name === n));
	if (unknown.length || !targetNames.length) throw new UsageError(`--targets takes a list of ${TARGETS.map(t => t.name).join(", ")} (got "${flags.targets}")`);
	const targets = TARGETS.filter(t => targetNames.includes(t.name));
	const mix = (flags.mix ?? "callers") as Mix;
	if (!MIXES.includes(mix)) throw new UsageError(`--mix must be one of ${MIXES.join(", ")} (got "${flags.mix}")`);
	const natsUrl = flags.nats ?? "nats://127.0.0.1:4222";
	const redisUrl = flags.redis ?? "redis://127.0.0.1:6379";
	if (!natsUrl.startsWith("nats://")) throw new UsageError(`--nats must be a nats:// URL (got "${natsUrl}")`);
	if (!/^rediss?:\/\//.test(redisUrl)) throw new UsageError(`--redis must be a redis:// URL (got "${redisUrl}")`);
	// Before anything runs: finding out after the in-process part wastes a minute.
	const redisAt = new URL(redisUrl);
	if (!(await canConnect(redisAt.hostname, Number(redisAt.port || 6379)))) throw new Error(`no Redis at ${redisUrl} (start one, or pass --redis URL)`);
	if (!skipHttp) {
		const { hostname, port } = new URL(natsUrl);
		if (!(await canConnect(hostname, Number(port || 4222)))) throw new Error(`no NATS server at ${natsUrl} (start one, pass --nats URL, or --skip-http)`);
	}

	const cpus = os.cpus();
	console.log(`geo benchmark: nearest ${LIMIT} within ${RADII.map(radiusText).join(" / ")}, ${nPoints} points, ${nQueries} positions (seed ${seed}); ` +
		`node ${process.version}, ${cpus.length} × ${cpus[0]?.model ?? "?"}\n`);
	const busy = await machineBusyPct();
	if (busy > BUSY_WARN_PCT) console.log(`WARNING: the machine is already busy (${busy} % of a core used by other processes); results will be low\n`);

	const failures: string[] = [];
	const goals: Goal[] = [];
	if (skipInProcess) {
		const http = await runHttp({ load, nPoints, nQueries, seed, natsUrl, redisUrl, targets, mix }, goals, failures);
		return writeReport("geo", {
			parameters: { points: nPoints, positions: nQueries, seed, radiiM: RADII, limit: LIMIT, http: httpParameters(load, natsUrl, mix) },
			results: { inProcess: null, http: Object.fromEntries(http.map(({ target, ...r }) => [target, r])) },
			goals,
			failures,
		});
	}

	const inProc = await runInProcess({ points: nPoints, queries: nQueries, seed, redisUrl }, msg => console.log(`in-process ${msg}`));
	const { check } = inProc;
	const checkedText = Object.entries(check.perMethod)
		.map(([method, m]) => `${method} ${m.exact}/${m.checked} identical${m.tolerated ? `, ${m.tolerated} equal within tolerance (near-ties, distances ≤ ${m.maxDeltaM.toPrecision(2)} m apart)` : ""}`)
		.join("; ");
	if (check.agree) {
		console.log(`\nresults agree: ${checkedText}`);
		console.log(`  (tolerances: geokdbush ${GEOKDBUSH_TOLERANCE_REL} relative, Redis ${REDIS_TOLERANCE_M} m for its 52-bit geohash coordinates; our index must be identical)`);
	} else {
		console.log(`\nRESULTS DIFFER from brute force (${check.mismatches.length} answers): ${checkedText}`);
		for (const m of check.mismatches.slice(0, 20)) console.log(`  ${m.method}, ${radiusText(m.radius)}, position #${m.query}: ${m.problem}`);
		if (check.mismatches.length > 20) console.log(`  … and ${check.mismatches.length - 20} more`);
		failures.push(`${check.mismatches.length} answers differ from brute force`);
	}

	let http: HttpResult[] = [];
	if (check.agree) {
		const ours = (radius: number) => inProc.rows.find(r => r.method === OURS && r.radius === radius)!;
		console.log(`\nour index: H3 resolution ${inProc.resolution} (chooseResolution), ${inProc.cells} cells, built in ${Math.round(inProc.buildMs)} ms; ` +
			`memory ${mb(inProc.indexBytes)} after building, ${mb(inProc.indexBytesAfterQueries)} with the ring caches the queries filled ` +
			`(points themselves ${mb(inProc.pointsBytes)}, not counted); geokdbush ${mb(inProc.kdbush.bytes)}, built in ${Math.round(inProc.kdbush.buildMs)} ms`);
		console.log(`\n${formatTable(
			[{ title: "method" }, { title: "radius", align: "right" }, { title: "queries/s", align: "right" }, { title: "p50 µs", align: "right" },
				{ title: "p99 µs", align: "right" }, { title: "vs our index", align: "right" }, { title: "note" }],
			inProc.rows.map(r => [r.method === OURS ? `${OURS} (res ${inProc.resolution})` : r.method, radiusText(r.radius), String(Math.round(r.qps)),
				us(r.p50Us), us(r.p99Us), times(r.ratio), r.note ?? ""]),
		)}`);
		const kdRatios = RADII.map(radius => ours(radius).qps / inProc.rows.find(r => r.method === KD && r.radius === radius)!.qps);
		const redisRatios = RADII.map(radius => ours(radius).qps / inProc.rows.find(r => r.method === REDIS_ONE && r.radius === radius)!.qps);
		const perRadius = (ratios: number[]) => RADII.map((radius, i) => `${radiusText(radius)} ${times(ratios[i])}`).join(", ");
		goals.push(
			{ goal: "our index ≥ geokdbush at every radius", pass: kdRatios.every(x => x >= 1), value: perRadius(kdRatios) },
			{ goal: `our index ≥ ${GOALS.vsRedis}× Redis one-at-a-time`, pass: redisRatios.every(x => x >= GOALS.vsRedis), value: perRadius(redisRatios) },
			{ goal: `index memory ≤ ${GOALS.memoryMb} MB`, pass: inProc.indexBytesAfterQueries <= GOALS.memoryMb * MB, value: mb(inProc.indexBytesAfterQueries) },
		);
		printGoals("goals (in-process)", goals);

		if (!skipHttp) http = await runHttp({ load, nPoints, nQueries, seed, natsUrl, redisUrl, targets, mix }, goals, failures);
	}

	return writeReport("geo", {
		parameters: {
			points: nPoints, positions: nQueries, seed, radiiM: RADII, limit: LIMIT, checkSample: CHECK_SAMPLE, warmupQueries: WARMUP_QUERIES, redisPipeline: REDIS_PIPELINE,
			redis: redisUrl, http: skipHttp ? null : httpParameters(load, natsUrl, mix),
		},
		results: {
			inProcess: {
				resolution: inProc.resolution, cells: inProc.cells, buildMs: inProc.buildMs, chooseResolutionMs: inProc.chooseResolutionMs,
				indexBytes: inProc.indexBytes, indexBytesAfterQueries: inProc.indexBytesAfterQueries, pointsBytes: inProc.pointsBytes,
				kdbush: inProc.kdbush, redisLoadMs: inProc.redisLoadMs, check: inProc.check, methods: inProc.rows,
			},
			http: skipHttp ? null : Object.fromEntries(http.map(({ target, ...r }) => [target, r])),
		},
		goals,
		failures,
	});
}

const httpParameters = (load: LoadOptions, natsUrl: string, mix: Mix) =>
	({ path: `GET ${API}/points/nearby`, mix, connections: load.connections, durationSec: load.durationSec, warmupSec: load.warmupSec, pipelining: load.pipelining, nats: natsUrl });

async function runHttp(
	opts: { load: LoadOptions; nPoints: number; nQueries: number; seed: number; natsUrl: string; redisUrl: string; targets: Target[]; mix: Mix },
	goals: Goal[],
	failures: string[],
): Promise<HttpResult[]> {
	const { load } = opts;
	// The same points and positions as in-process (both are deterministic), for the answer check and the paths.
	const points = generatePoints(opts.nPoints, opts.seed);
	const positions = generatePositions(points, opts.nQueries, opts.seed);
	const paths = requestPaths(opts.mix, points, positions, opts.seed);

	const dataScope = new Scope();
	const results: HttpResult[] = [];
	try {
		const seededDir = await dataScope.tempDir("bench-geo-seed-");
		console.log(`\nhttp       seeding ${opts.nPoints} points into ${seededDir} (npm run seed -- --points ${opts.nPoints} --cities 5 --doors 24 --seed ${opts.seed})…`);
		const t = Date.now();
		await seedFleet(seededDir, opts.nPoints, opts.seed);
		console.log(`http       seeded in ${((Date.now() - t) / 1000).toFixed(1)} s\n`);
		for (const target of opts.targets) results.push(await benchTarget(target, load, { natsUrl: opts.natsUrl, redisUrl: opts.redisUrl, seededDir }, points, positions, paths));
	} finally {
		await dataScope.close();
	}

	const hitText = (c: CacheCounts | undefined) => (c ? pct(c.hitRate) : "n/a");
	console.log(`\n${formatTable(
		[{ title: "target" }, { title: "rps", align: "right" }, { title: "p50 ms", align: "right" }, { title: "p99 ms", align: "right" }, { title: "cache hit rate", align: "right" },
			{ title: "from cold: rps", align: "right" }, { title: "p99 ms", align: "right" }, { title: "cache hit rate", align: "right" }],
		results.map(r => [r.target, String(Math.round(r.rps)), ms(r.p50), ms(r.p99), hitText(r.cache), String(Math.round(r.cold.rps)), ms(r.cold.p99), hitText(r.cold.cache)]),
	)}`);
	const httpGoals = results.flatMap(r => {
		const g = HTTP_GOALS[r.target] ?? HTTP_GOALS.nats;
		return [
			{ goal: `${r.target} ≥ ${g.rps} rps`, pass: r.rps >= g.rps, value: `${Math.round(r.rps)} rps (cache hit rate ${hitText(r.cache)})` },
			{ goal: `${r.target} p99 ≤ ${g.p99Ms} ms at ${load.connections} connections`, pass: r.p99 <= g.p99Ms, value: `${r.p99} ms` },
		];
	});
	goals.push(...httpGoals);
	printGoals("goals (HTTP, steady: after every request of the cycle was asked once)", httpGoals);
	if (load.connections !== 64) console.log("  (the p99 goal is defined at 64 connections)");
	console.log(`  (mix "${opts.mix}": ${paths.length} distinct requests in a cycle${opts.mix === "spread" ? ` (${opts.nQueries} positions × ${RADII.length} radii)` : ""}; ` +
		`"from cold" is the ${load.durationSec} s right after a ${load.warmupSec} s warm-up of a freshly started platform, while its cache fills)`);
	const missed = results.filter(r => { const g = HTTP_GOALS[r.target] ?? HTTP_GOALS.nats; return r.rps < g.rps || r.p99 > g.p99Ms; });
	for (const r of missed) {
		const serverCpu = r.cpu ? Math.max(...Object.values(r.cpu.processes)) : undefined;
		console.log(`  why ${r.target} missed (measured in that window): ` + [
			r.cpu ? `the hypervisor stole ${r.cpu.steal} % of a core${r.cpu.steal > STEAL_WARN_PCT ? " (figures are low)" : ""}` : undefined,
			serverCpu !== undefined ? `the busiest server used ${serverCpu} % of one core${serverCpu >= 90 ? " (saturated: one event loop)" : ""}` : undefined,
			r.cpu ? `the machine ${r.cpu.machine} % of ${os.cpus().length * 100} %` : undefined,
			r.cache ? `${pct(1 - r.cache.hitRate)} of answers computed afresh` : undefined,
		].filter(Boolean).join("; "));
	}

	if (results.some(r => r.cpu)) {
		console.log(`\nCPU during the steady window (% of one core; the machine has ${os.cpus().length * 100} %; "others" includes nats-server and redis-server):`);
		for (const r of results) if (r.cpu) console.log(`  ${r.target.padEnd(10)} ${cpuText(r.cpu)}`);
	}
	failures.push(...results.flatMap(r => runProblems(r).map(p => `${r.target}: ${p}`)));
	return results;
}
