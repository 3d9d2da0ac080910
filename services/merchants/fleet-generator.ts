/**
 * A synthetic but plausible fleet of storage points for demos, load tests and
 * benchmarks: the hot cities with their real stations and business districts,
 * points clustered around them, merchants, cabinets and doors.
 *
 * Pure and deterministic: everything except the cabinet secrets comes from a
 * seeded PRNG, so the same seed gives the same ids, places and names on every
 * run. The secrets come from `newCabinetSecret()` (crypto), on purpose: a
 * seed must never be enough to derive a cabinet's password.
 *
 * Three independent PRNG streams are derived from the seed:
 * - "geo": a point's id, city and position — `generatePoints` runs only this
 *   one, so a benchmark's 100 000 points are exactly the seeded fleet's;
 * - "merchants": the merchants;
 * - "detail": names, addresses, merchant choice, status, cabinets and doors.
 */
import { newCabinetSecret } from "../../domain/cabinet-secrets";
import { enabledDoorCounts, type CabinetDoc, type CityDoc, type MerchantDoc, type PointDoc } from "./model";
import type { DoorEntry } from "../../domain/catalog";
import { DEFAULT_PRICING, type PointStatus, type Size } from "../../domain/catalog";

// ---------------------------------------------------------------------------
// Geography

export interface SubCentre {
	name: string;
	district: string;
	lat: number;
	lng: number;
	/** Cluster spread (standard deviation), km. */
	sigmaKm: number;
	/** Relative share of the city's clustered points. */
	weight: number;
	/** Roads for the addresses of the points around it. */
	roads: string[];
	/** A transport hub: open around the clock. */
	hub?: boolean;
}

export interface HotCity {
	code: string;
	name: string;
	nameEn: string;
	lat: number;
	lng: number;
	/** Relative share of the fleet's points. */
	weight: number;
	subCentres: SubCentre[];
}

/** The five hot cities, with approximate real coordinates of their centres and sub-centres. */
export const HOT_CITIES: readonly HotCity[] = [
	{
		code: "BJ", name: "北京", nameEn: "Beijing", lat: 39.9042, lng: 116.4074, weight: 24,
		subCentres: [
			{ name: "北京南站", district: "丰台区", lat: 39.8652, lng: 116.3786, sigmaKm: 1.5, weight: 3, hub: true, roads: ["永外大街", "马家堡东路", "南站路", "开阳路"] },
			{ name: "北京站", district: "东城区", lat: 39.9027, lng: 116.4270, sigmaKm: 1.2, weight: 2, hub: true, roads: ["北京站街", "建国门内大街", "崇文门东大街", "东单北大街"] },
			{ name: "北京西站", district: "丰台区", lat: 39.8949, lng: 116.3220, sigmaKm: 1.5, weight: 2, hub: true, roads: ["莲花池东路", "羊坊店路", "广安门外大街", "北蜂窝路"] },
			{ name: "三里屯", district: "朝阳区", lat: 39.9334, lng: 116.4549, sigmaKm: 1.8, weight: 2, roads: ["三里屯路", "工人体育场北路", "幸福三村", "东大桥路"] },
			{ name: "国贸", district: "朝阳区", lat: 39.9087, lng: 116.4605, sigmaKm: 2.5, weight: 3, roads: ["建国门外大街", "东三环中路", "光华路", "景华南街"] },
			{ name: "中关村", district: "海淀区", lat: 39.9831, lng: 116.3160, sigmaKm: 3, weight: 3, roads: ["中关村大街", "海淀大街", "北四环西路", "知春路", "苏州街"] },
			{ name: "王府井", district: "东城区", lat: 39.9149, lng: 116.4108, sigmaKm: 1.2, weight: 2, roads: ["王府井大街", "东长安街", "金鱼胡同", "灯市口大街"] },
			{ name: "首都机场", district: "顺义区", lat: 40.0799, lng: 116.6031, sigmaKm: 1.5, weight: 1, hub: true, roads: ["机场路", "首都机场辅路", "天竺路"] },
		],
	},
	{
		code: "SH", name: "上海", nameEn: "Shanghai", lat: 31.2304, lng: 121.4737, weight: 26,
		subCentres: [
			{ name: "人民广场", district: "黄浦区", lat: 31.2317, lng: 121.4752, sigmaKm: 1.5, weight: 3, roads: ["南京东路", "西藏中路", "人民大道", "九江路", "福州路"] },
			{ name: "陆家嘴", district: "浦东新区", lat: 31.2397, lng: 121.4998, sigmaKm: 2, weight: 3, roads: ["世纪大道", "陆家嘴环路", "银城中路", "东方路", "浦东南路"] },
			{ name: "虹桥枢纽", district: "闵行区", lat: 31.1945, lng: 121.3207, sigmaKm: 1.8, weight: 3, hub: true, roads: ["申虹路", "申贵路", "七莘路", "申长路"] },
			{ name: "上海站", district: "静安区", lat: 31.2496, lng: 121.4558, sigmaKm: 1.2, weight: 2, hub: true, roads: ["秣陵路", "天目西路", "恒丰路", "梅园路"] },
			{ name: "徐家汇", district: "徐汇区", lat: 31.1950, lng: 121.4370, sigmaKm: 2, weight: 2, roads: ["漕溪北路", "肇嘉浜路", "虹桥路", "衡山路"] },
			{ name: "静安寺", district: "静安区", lat: 31.2237, lng: 121.4453, sigmaKm: 1.5, weight: 2, roads: ["南京西路", "延安中路", "常德路", "华山路"] },
			{ name: "外滩", district: "黄浦区", lat: 31.2400, lng: 121.4900, sigmaKm: 1, weight: 1, roads: ["中山东一路", "北京东路", "滇池路", "四川中路"] },
			{ name: "上海南站", district: "徐汇区", lat: 31.1546, lng: 121.4297, sigmaKm: 1.2, weight: 1, hub: true, roads: ["沪闵路", "石龙路", "柳州路"] },
		],
	},
	{
		code: "GZ", name: "广州", nameEn: "Guangzhou", lat: 23.1291, lng: 113.2644, weight: 18,
		subCentres: [
			{ name: "广州南站", district: "番禺区", lat: 22.9889, lng: 113.2696, sigmaKm: 1.5, weight: 3, hub: true, roads: ["南站北路", "石兴大道", "兴业大道"] },
			{ name: "广州东站", district: "天河区", lat: 23.1503, lng: 113.3245, sigmaKm: 1.2, weight: 2, hub: true, roads: ["林和中路", "天河北路", "东站路"] },
			{ name: "广州站", district: "越秀区", lat: 23.1490, lng: 113.2571, sigmaKm: 1.2, weight: 2, hub: true, roads: ["环市西路", "站前路", "解放北路"] },
			{ name: "体育中心", district: "天河区", lat: 23.1374, lng: 113.3238, sigmaKm: 1.5, weight: 2, roads: ["天河路", "体育西路", "体育东路", "天河北路"] },
			{ name: "珠江新城", district: "天河区", lat: 23.1190, lng: 113.3214, sigmaKm: 2, weight: 3, roads: ["花城大道", "珠江东路", "冼村路", "金穗路"] },
			{ name: "北京路", district: "越秀区", lat: 23.1252, lng: 113.2697, sigmaKm: 1.5, weight: 2, roads: ["北京路", "中山五路", "文明路", "西湖路"] },
			{ name: "白云机场", district: "白云区", lat: 23.3924, lng: 113.2988, sigmaKm: 1.5, weight: 1, hub: true, roads: ["机场路", "机场高速辅路", "空港大道"] },
		],
	},
	{
		code: "SZ", name: "深圳", nameEn: "Shenzhen", lat: 22.5431, lng: 114.0579, weight: 18,
		subCentres: [
			{ name: "深圳北站", district: "龙华区", lat: 22.6094, lng: 114.0290, sigmaKm: 1.5, weight: 3, hub: true, roads: ["致远中路", "民塘路", "玉龙路"] },
			{ name: "罗湖口岸", district: "罗湖区", lat: 22.5319, lng: 114.1173, sigmaKm: 1.2, weight: 2, hub: true, roads: ["人民南路", "建设路", "嘉宾路", "沿河南路"] },
			{ name: "福田中心区", district: "福田区", lat: 22.5333, lng: 114.0550, sigmaKm: 2, weight: 3, roads: ["深南大道", "福华三路", "益田路", "金田路"] },
			{ name: "华强北", district: "福田区", lat: 22.5446, lng: 114.0857, sigmaKm: 1.2, weight: 2, roads: ["华强北路", "振华路", "红荔路", "燕南路"] },
			{ name: "南山科技园", district: "南山区", lat: 22.5405, lng: 113.9531, sigmaKm: 2.5, weight: 3, roads: ["科苑路", "高新南一道", "深南大道", "科技中二路"] },
			{ name: "宝安机场", district: "宝安区", lat: 22.6393, lng: 113.8107, sigmaKm: 1.5, weight: 1, hub: true, roads: ["机场南路", "航站四路", "宝安大道"] },
		],
	},
	{
		code: "HZ", name: "杭州", nameEn: "Hangzhou", lat: 30.2741, lng: 120.1551, weight: 14,
		subCentres: [
			{ name: "杭州东站", district: "上城区", lat: 30.2908, lng: 120.2127, sigmaKm: 1.5, weight: 3, hub: true, roads: ["天城路", "新风路", "东宁路", "全福桥路"] },
			{ name: "杭州站", district: "上城区", lat: 30.2437, lng: 120.1826, sigmaKm: 1.2, weight: 2, hub: true, roads: ["环城东路", "江城路", "城站路"] },
			{ name: "湖滨", district: "上城区", lat: 30.2590, lng: 120.1640, sigmaKm: 1.2, weight: 2, roads: ["湖滨路", "延安路", "平海路", "东坡路"] },
			{ name: "武林广场", district: "拱墅区", lat: 30.2720, lng: 120.1630, sigmaKm: 1.5, weight: 2, roads: ["体育场路", "环城北路", "中山北路", "凤起路"] },
			{ name: "钱江新城", district: "上城区", lat: 30.2450, lng: 120.2100, sigmaKm: 2, weight: 2, roads: ["富春路", "新业路", "解放东路", "之江路"] },
			{ name: "西溪", district: "西湖区", lat: 30.2700, lng: 120.0620, sigmaKm: 2.5, weight: 2, roads: ["文二西路", "天目山路", "紫金港路", "五常大道"] },
			{ name: "萧山机场", district: "萧山区", lat: 30.2295, lng: 120.4345, sigmaKm: 1.5, weight: 1, hub: true, roads: ["机场大道", "空港大道", "保税大道"] },
		],
	},
];

/** Share of points spread uniformly over the city rather than clustered. */
const SPREAD_SHARE = 0.2;
const SPREAD_RADIUS_KM = 25;
/** Clusters are cut at this many standard deviations, so no point lands far out. */
const CLUSTER_CUTOFF_SIGMAS = 2.5;

const KM_PER_DEG_LAT = 110.574;
const kmPerDegLng = (lat: number) => 111.32 * Math.cos((lat * Math.PI) / 180);

/** Great-circle distance in km (greatCircleDistance). */
export function distanceKm(a: { lat: number; lng: number }, b: { lat: number; lng: number }): number {
	const rad = Math.PI / 180;
	const dLat = (b.lat - a.lat) * rad;
	const dLng = (b.lng - a.lng) * rad;
	const h = Math.sin(dLat / 2) ** 2 + Math.cos(a.lat * rad) * Math.cos(b.lat * rad) * Math.sin(dLng / 2) ** 2;
	return 2 * 6371.0088 * Math.asin(Math.min(1, Math.sqrt(h)));
}

// ---------------------------------------------------------------------------
// PRNG

export type Rng = () => number;

/** mulberry32: a fast 32-bit PRNG, uniform in [0, 1). */
export function mulberry32(seed: number): Rng {
	let a = seed >>> 0;
	return () => {
		a = (a + 0x6d2b79f5) >>> 0;
		let t = a;
		t = Math.imul(t ^ (t >>> 15), t | 1);
		t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
		return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
	};
}

/** An independent stream of the seed (splitmix32-style mixing, so nearby seeds do not give correlated streams). */
function stream(seed: number, name: string): Rng {
	let h = (seed >>> 0) ^ 0x9e3779b9;
	for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x85ebca6b);
	h ^= h >>> 16;
	h = Math.imul(h, 0x7feb352d);
	h ^= h >>> 15;
	h = Math.imul(h, 0x846ca68b);
	h ^= h >>> 16;
	return mulberry32(h);
}

const ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/** `prefix_` + 16 base64url characters (96 bits), the shape of `Repository.newId()`. */
function randomId(rng: Rng, prefix: string): string {
	let s = `${prefix}_`;
	for (let i = 0; i < 16; i++) s += ID_ALPHABET[(rng() * 64) | 0];
	return s;
}

const pick = <T>(rng: Rng, list: readonly T[]): T => list[(rng() * list.length) | 0];

function pickWeighted<T extends { weight: number }>(rng: Rng, list: readonly T[], total: number): T {
	let r = rng() * total;
	for (const item of list) {
		r -= item.weight;
		if (r < 0) return item;
	}
	return list[list.length - 1];
}

/** Standard normal (Box–Muller). */
function gaussian(rng: Rng): number {
	const u = 1 - rng(); // (0, 1]
	return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng());
}

const round6 = (x: number) => Math.round(x * 1e6) / 1e6;

// ---------------------------------------------------------------------------
// Options

export interface FleetOptions {
	points: number;
	/** How many of `HOT_CITIES`, in order (1–5). */
	cities: number;
	doorsPerCabinet: number;
	/** Default 42. */
	seed?: number;
	/** Default max(5, points / 200). */
	merchants?: number;
	/** CABINET_SECRET_KEY of the platform that will load the fleet (the cabinets' secrets derive from it). */
	cabinetSecretKey: string;
}

interface ResolvedOptions {
	points: number;
	cities: readonly HotCity[];
	doorsPerCabinet: number;
	seed: number;
	merchants: number;
	createdAt: Date;
	cabinetSecretKey: string;
}

export const DEFAULT_SEED = 42;
export const MAX_DOORS_PER_CABINET = 99;

function resolve(opts: FleetOptions): ResolvedOptions {
	const { points, cities, doorsPerCabinet } = opts;
	const seed = opts.seed ?? DEFAULT_SEED;
	if (!Number.isInteger(points) || points < 0) throw new RangeError(`points must be a non-negative integer (got ${points})`);
	if (!Number.isInteger(cities) || cities < 1 || cities > HOT_CITIES.length) throw new RangeError(`cities must be 1..${HOT_CITIES.length} (got ${cities})`);
	if (!Number.isInteger(doorsPerCabinet) || doorsPerCabinet < 1 || doorsPerCabinet > MAX_DOORS_PER_CABINET) {
		throw new RangeError(`doorsPerCabinet must be 1..${MAX_DOORS_PER_CABINET} (got ${doorsPerCabinet})`);
	}
	if (!Number.isInteger(seed)) throw new RangeError(`seed must be an integer (got ${seed})`);
	const merchants = opts.merchants ?? Math.max(5, Math.floor(points / 200));
	if (!Number.isInteger(merchants) || merchants < 1) throw new RangeError(`merchants must be a positive integer (got ${merchants})`);
	return { points, cities: HOT_CITIES.slice(0, cities), doorsPerCabinet, seed, merchants, createdAt: fleetDate(seed), cabinetSecretKey: opts.cabinetSecretKey };
}

/** The fixed creation date of a seed's fleet: a day of 2025 chosen by the seed, 08:00 Beijing time. */
export function fleetDate(seed: number): Date {
	const day = (((seed % 365) + 365) % 365) | 0;
	return new Date(Date.UTC(2025, 0, 1, 0, 0, 0) + day * 86_400_000);
}

// ---------------------------------------------------------------------------
// Positions (the "geo" stream)

export interface GeneratedPoint {
	id: string;
	lat: number;
	lng: number;
	cityCode: string;
}

interface Placement extends GeneratedPoint {
	city: HotCity;
	/** The cluster the point belongs to, or null for a spread point. */
	cluster: SubCentre | null;
}

function placer(seed: number, cities: readonly HotCity[]) {
	const rng = stream(seed, "geo");
	const cityTotal = cities.reduce((s, c) => s + c.weight, 0);
	const subTotals = new Map(cities.map(c => [c.code, c.subCentres.reduce((s, x) => s + x.weight, 0)]));
	return (): Placement => {
		const id = randomId(rng, "pt");
		const city = pickWeighted(rng, cities, cityTotal);
		let lat: number;
		let lng: number;
		let cluster: SubCentre | null = null;
		if (rng() < SPREAD_SHARE) {
			// Uniform over a disc around the centre.
			const r = SPREAD_RADIUS_KM * Math.sqrt(rng());
			const a = 2 * Math.PI * rng();
			lat = city.lat + (r * Math.sin(a)) / KM_PER_DEG_LAT;
			lng = city.lng + (r * Math.cos(a)) / kmPerDegLng(city.lat);
		} else {
			cluster = pickWeighted(rng, city.subCentres, subTotals.get(city.code)!);
			let dx: number;
			let dy: number;
			do {
				dx = gaussian(rng);
				dy = gaussian(rng);
			} while (dx * dx + dy * dy > CLUSTER_CUTOFF_SIGMAS ** 2);
			lat = cluster.lat + (dy * cluster.sigmaKm) / KM_PER_DEG_LAT;
			lng = cluster.lng + (dx * cluster.sigmaKm) / kmPerDegLng(cluster.lat);
		}
		return { id, lat: round6(lat), lng: round6(lng), cityCode: city.code, city, cluster };
	};
}

/**
 * Just the points' ids and positions, from the same distribution (and the
 * same seed gives the same points) as `generateFleet` with as many cities:
 * no names, cabinets or secrets, so 100 000 points take a few tens of ms.
 */
export function generatePoints(count: number, seed: number = DEFAULT_SEED, cities: number = HOT_CITIES.length): GeneratedPoint[] {
	const { cities: chosen } = resolve({ points: count, cities, doorsPerCabinet: 1, seed, merchants: 1, cabinetSecretKey: "" });
	const next = placer(seed, chosen);
	const out: GeneratedPoint[] = new Array(count);
	for (let i = 0; i < count; i++) {
		const p = next();
		out[i] = { id: p.id, lat: p.lat, lng: p.lng, cityCode: p.cityCode };
	}
	return out;
}

// ---------------------------------------------------------------------------
// Merchants (the "merchants" stream)

const BRANDS = ["安途", "行无忧", "随身寄", "轻装", "易存", "畅行", "小柜", "驿站", "乐寄", "存易达", "旅伴", "快存", "悠游", "途安", "便捷仓", "优寄"];
const BUSINESSES = ["行李寄存服务有限公司", "智能科技有限公司", "商贸有限公司", "旅游服务有限公司", "物业管理有限公司", "便民服务有限公司"];

function generateMerchants(o: ResolvedOptions): { merchants: MerchantDoc[]; byCity: Map<string, MerchantDoc[]> } {
	const rng = stream(o.seed, "merchants");
	const merchants: MerchantDoc[] = [];
	const byCity = new Map<string, MerchantDoc[]>(o.cities.map(c => [c.code, []]));
	const names = new Set<string>();
	for (let i = 0; i < o.merchants; i++) {
		// Merchants are local: each has a home city (round robin), where its points are.
		const city = o.cities[i % o.cities.length];
		let name = `${city.name}${pick(rng, BRANDS)}${pick(rng, BUSINESSES)}`;
		for (let n = 2; names.has(name); n++) name = `${name.replace(/（\d+）$/, "")}（${n}）`;
		names.add(name);
		const m: MerchantDoc = {
			_id: randomId(rng, "mer"),
			name,
			contactPhone: `1380013${String(i % 10_000).padStart(4, "0")}`,
			commissionRate: Math.round((0.1 + rng() * 0.2) * 100) / 100,
			createdAt: o.createdAt,
			updatedAt: o.createdAt,
		};
		merchants.push(m);
		byCity.get(city.code)!.push(m);
	}
	return { merchants, byCity };
}

// ---------------------------------------------------------------------------
// Points, cabinets, doors (the "detail" stream)

export interface CabinetCredential {
	cabinetId: string;
	pointId: string;
	/** MQTT username: the cabinet id. */
	username: string;
	/** Shown once; only its hash is in the cabinet document. */
	password: string;
	doors: { no: number; size: Size }[];
}

export interface FleetChunk {
	/** All cities, in the first chunk only (empty afterwards). */
	cities: CityDoc[];
	/** All merchants, in the first chunk only (empty afterwards). */
	merchants: MerchantDoc[];
	points: PointDoc[];
	cabinets: CabinetDoc[];
	/** One per cabinet of this chunk. */
	secrets: CabinetCredential[];
}

export interface Fleet {
	cities: CityDoc[];
	merchants: MerchantDoc[];
	points: PointDoc[];
	cabinets: CabinetDoc[];
	secrets: CabinetCredential[];
}

const VENUES = ["附近", "附近", "旁", "一层服务台", "B1 层", "东侧", "西广场", "地铁站 A 口", "地铁站 B 口", "便利店内"];
const HUB_VENUES = ["出发层", "到达层", "南广场", "北广场", "地下停车场入口", "换乘大厅", "东进站口", "西出站口"];
const POINT_KINDS = ["寄存点", "寄存点", "寄存点", "行李寄存", "智能寄存柜"];
const OPEN_HOURS = ["00:00-24:00", "07:00-23:00", "08:00-22:00", "09:00-22:00", "10:00-22:00"];

/** Cabinet doors: S at the top, then M, L at the bottom; proportions about 50/35/15 with random rounding. */
function makeDoors(rng: Rng, n: number): DoorEntry[] {
	let large = Math.floor(n * 0.15 + rng());
	let medium = Math.floor(n * 0.35 + rng());
	while (large + medium > n) {
		if (medium > 0) medium--;
		else large--;
	}
	const small = n - large - medium;
	const doors: DoorEntry[] = [];
	for (let no = 1; no <= n; no++) {
		const size: Size = no <= small ? "S" : no <= small + medium ? "M" : "L";
		doors.push({ no, size, disabled: rng() < 0.02 });
	}
	return doors;
}

function cityDocs(o: ResolvedOptions): CityDoc[] {
	return o.cities.map(c => ({ _id: c.code, name: c.name, lat: c.lat, lng: c.lng, createdAt: o.createdAt }));
}

function nearestSubCentre(city: HotCity, lat: number, lng: number): SubCentre {
	let best = city.subCentres[0];
	let bestD = Infinity;
	for (const s of city.subCentres) {
		const d = distanceKm(s, { lat, lng });
		if (d < bestD) {
			bestD = d;
			best = s;
		}
	}
	return best;
}

/**
 * The fleet in chunks of `chunkSize` points (with their cabinets and the
 * cabinets' secrets), for 100 000 points without holding everything twice.
 * The first chunk also carries all cities and merchants: insert those first.
 * Ids, positions and names do not depend on the chunk size.
 */
export function* generateFleetChunks(opts: FleetOptions, chunkSize = 1000): Generator<FleetChunk> {
	if (!Number.isInteger(chunkSize) || chunkSize < 1) throw new RangeError(`chunkSize must be a positive integer (got ${chunkSize})`);
	const o = resolve(opts);
	const place = placer(o.seed, o.cities);
	const rng = stream(o.seed, "detail");
	const { merchants, byCity } = generateMerchants(o);
	const allMerchants = merchants;
	const counters = new Map<string, number>();
	const at = o.createdAt;

	let chunk: FleetChunk = { cities: cityDocs(o), merchants, points: [], cabinets: [], secrets: [] };
	for (let i = 0; i < o.points; i++) {
		const p = place();
		const area = p.cluster ?? nearestSubCentre(p.city, p.lat, p.lng);
		// Spread points are named after their district, clustered ones after their station or quarter.
		const label = p.cluster ? area.name : area.district;
		const key = `${p.cityCode}/${label}`;
		const seq = (counters.get(key) ?? 0) + 1;
		counters.set(key, seq);

		const local = byCity.get(p.cityCode)!;
		const pool = local.length ? local : allMerchants;
		// A few big merchants hold many points, most hold a few.
		const merchant = pool[Math.floor(pool.length * rng() ** 1.6)];

		const hub = !!p.cluster?.hub;
		const venue = hub ? pick(rng, HUB_VENUES) : pick(rng, VENUES);
		const houseNo = 1 + Math.floor(rng() ** 2 * 800);
		const status: PointStatus = rng() < 0.02 ? "disabled" : "active";
		const openHours = hub ? "00:00-24:00" : pick(rng, OPEN_HOURS);
		const point: PointDoc = {
			_id: p.id,
			merchantId: merchant._id,
			cityCode: p.cityCode,
			// "上海 陆家嘴 寄存点 #12", but "上海南站 寄存点 #3" rather than "上海 上海南站 …".
			name: `${label.startsWith(p.city.name) ? "" : `${p.city.name} `}${label} ${pick(rng, POINT_KINDS)} #${seq}`,
			address: `${area.district} ${pick(rng, area.roads)} ${houseNo} 号 ${venue}`,
			lat: p.lat,
			lng: p.lng,
			openHours,
			pricing: structuredClone(DEFAULT_PRICING),
			status,
			doors: { S: 0, M: 0, L: 0 },
			version: 1,
			createdAt: at,
			updatedAt: at,
		};

		const nCabinets = rng() < 0.1 ? 2 : 1;
		const cabinets: CabinetDoc[] = [];
		for (let c = 0; c < nCabinets; c++) {
			const doors = makeDoors(rng, o.doorsPerCabinet);
			const cabinetId = randomId(rng, "cab");
			const secret = newCabinetSecret(o.cabinetSecretKey, cabinetId);
			cabinets.push({
				_id: cabinetId, pointId: point._id, merchantId: merchant._id, doors, secretHash: secret.hash, secretNonce: secret.nonce,
				secretRotatedAt: at, version: 1, createdAt: at, updatedAt: at,
			});
			chunk.secrets.push({
				cabinetId, pointId: point._id, username: cabinetId, password: secret.password,
				doors: doors.map(d => ({ no: d.no, size: d.size })),
			});
		}
		point.doors = enabledDoorCounts(cabinets);
		chunk.points.push(point);
		chunk.cabinets.push(...cabinets);

		if (chunk.points.length >= chunkSize) {
			yield chunk;
			chunk = { cities: [], merchants: [], points: [], cabinets: [], secrets: [] };
		}
	}
	// The last partial chunk; also the only one (with cities and merchants) when there are no points.
	if (chunk.points.length || chunk.cities.length) yield chunk;
}

/** The whole fleet in memory (fine for thousands of points; use `generateFleetChunks` for more). */
export function generateFleet(opts: FleetOptions): Fleet {
	const fleet: Fleet = { cities: [], merchants: [], points: [], cabinets: [], secrets: [] };
	for (const c of generateFleetChunks(opts, 10_000)) {
		fleet.cities.push(...c.cities);
		fleet.merchants.push(...c.merchants);
		fleet.points.push(...c.points);
		fleet.cabinets.push(...c.cabinets);
		fleet.secrets.push(...c.secrets);
	}
	return fleet;
}

/** One line of the credentials file (JSON Lines) the cabinet simulator reads. */
export function credentialLine(s: CabinetCredential): string {
	return JSON.stringify({ username: s.username, password: s.password, pointId: s.pointId, doors: s.doors });
}
