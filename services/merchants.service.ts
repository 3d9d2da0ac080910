/**
 * merchants: the catalog — cities, merchants, points, cabinets and the door
 * registry (doors live inside their cabinet document, ids `{cabinetId}:{no}`).
 *
 * Merchant isolation is enforced here, not only at the edge: whenever a call
 * carries a user (it came through the gateway, or a service passed the user's
 * meta on), a merchant-only account may read and change only what belongs to
 * its own merchant, on every action. Calls without a user are the platform's
 * own services and are trusted.
 *
 * Every change is broadcast (every geo replica keeps its own index) with the
 * point as it is now, so a consumer can apply events idempotently by version,
 * and is written to the catalog audit log.
 */
import type { Context, ServiceSchema, ServiceSettingSchema } from "moleculer";
import type { Config } from "../config";
import { createDbMixin } from "../mixins/db.mixin";
import { Repository } from "../mixins/repository";
import type { AppMeta, Role } from "../types/auth";
import { created } from "../lib/created";
import { latParam, lngParam, pageParams, type Page, type PageParams } from "../types/params";
import { ErrorTypes, conflict, forbidden, invalid, notFound } from "../types/errors";
import { newCabinetSecret, verifyCabinetSecret } from "../domain/cabinet-secrets";
import { cabinetLive, cabinetsLive, callDoors, doorLinks, type CabinetLive, type DoorLinks } from "../lib/door-client";
import { ownerOf } from "../domain/placement";
import { errorType, NO_ANSWER_TYPES } from "../lib/mesh-errors";
import type { DoorView as LiveDoorView } from "../domain/doors";
import { seedDemoFleet } from "./merchants/demo-fleet";
import { CATALOG_ENTITIES, doorId, enabledDoorCounts, parseDoorId, toPointView, type AuditDoc, type CabinetDoc, type CityDoc, type MerchantDoc, type PointDoc } from "./merchants/model";
import type { CabinetRegisteredEvent, DoorUpdatedEvent, PointChangedEvent } from "../types/events";
import type { PointForOrder } from "../domain/catalog";
import { DEFAULT_PRICING, POINT_STATUSES, SIZES, type PointView, type Pricing, type Size, type DoorEntry } from "../domain/catalog";
import path from "node:path";

export interface CityView { code: string; name: string; lat: number; lng: number; points: number }
export interface MerchantView { id: string; name: string; contactPhone: string; commissionRate: number; createdAt: string }
/** A door; `state`, `open` and `occupied` are null when its live state could not be had (see `CabinetView.live`). */
export interface DoorView { id: string; no: number; size: Size; disabled: boolean; state: string | null; open: boolean | null; occupied: boolean | null; orderId?: string }
export interface CabinetView {
	id: string; pointId: string; merchantId: string; online: boolean | null; lastSeenAt: string | null;
	credentialsRotatedAt: string; doors: DoorView[]; createdAt: string;
	/** Whether the live part (link, door states) is known: false when the door actors could not be asked. */
	live: boolean;
	/** Why the live part is missing (an error type such as SERVICE_UNAVAILABLE), when `live` is false. */
	liveError?: string;
}

export interface CreateCityParams { code: string; name: string; lat: number; lng: number }
export interface CreateMerchantParams { name: string; contactPhone: string; commissionRate: number }
export interface CreatePointParams {
	merchantId: string; cityCode: string; name: string; address: string; lat: number; lng: number;
	openHours?: string; pricing?: Partial<Pricing>;
}
export type UpdatePointParams = { id: string } & Partial<Omit<CreatePointParams, "merchantId">> & { status?: PointDoc["status"] };
export interface RegisterCabinetParams { pointId: string; doors: { no: number; size: Size }[] }


/**
 * A cabinet's link as the doors nodes asked know it: online if a node holds it online; unknown
 * (null) when a doors node that may hold it could not be asked (by placement over every doors
 * node, the asked and the failed; all of them when there is no doors node).
 */
function linkState(cabinetId: string, l: { online: boolean } | undefined, links: DoorLinks): boolean | null {
	if (l?.online) return true;
	if (!links.unavailable.length) return false;
	if (!links.asked.length) return null;
	const owner = ownerOf(cabinetId, links.asked);
	return owner && links.unavailable.includes(owner) ? null : false;
}

/**
 * What an operator's open came to, for its audit entry: "opened", or the error type (CABINET_OFFLINE,
 * DOOR_TIMEOUT, …). A door call that timed out without an answer may still have opened the door: OUTCOME_UNKNOWN.
 */
function openOutcome(err: unknown): string {
	const type = (err as { type?: unknown } | null)?.type;
	if (type === "REQUEST_TIMEOUT" || type === "BROKER_DISCONNECTED") return "OUTCOME_UNKNOWN";
	// The call never reached a door actor (no endpoint, breaker open): as the API answers it.
	if (typeof type === "string" && NO_ANSWER_TYPES.has(type)) return "SERVICE_UNAVAILABLE";
	return typeof type === "string" && /^[A-Z][A-Z0-9_]{0,63}$/.test(type) ? type : "INTERNAL_ERROR";
}

const MAX_DOORS = 99;
const CITY_CODE = /^[A-Z]{2,8}$/;

// `strict: true` on nested objects too: the root-level `$$strict` does not reach them (API.md: unknown fields → 422).
const sizePriceParams = {
	type: "object",
	strict: true,
	props: {
		firstHours: { type: "number", integer: true, min: 0, max: 72 },
		firstFen: { type: "number", integer: true, min: 0, max: 1_000_000 },
		hourFen: { type: "number", integer: true, min: 0, max: 1_000_000 },
		dayCapFen: { type: "number", integer: true, min: 0, max: 10_000_000 },
	},
};
const pricingParams = {
	type: "object",
	optional: true,
	strict: true,
	props: { S: { ...sizePriceParams, optional: true }, M: { ...sizePriceParams, optional: true }, L: { ...sizePriceParams, optional: true } },
};
const idParam = { type: "string", min: 1, max: 80 };

interface Settings extends ServiceSettingSchema {
	rest: string;
}

interface Methods {
	ensureMerchantAccess(ctx: Context<unknown, AppMeta>, merchantId: string, privileged: Role[]): void;
	loadPoint(ctx: Context<unknown, AppMeta>, id: string, privileged: Role[]): Promise<PointDoc>;
	loadCabinet(ctx: Context<unknown, AppMeta>, id: string, privileged: Role[]): Promise<CabinetDoc>;
	recountPoint(pointId: string): Promise<PointDoc>;
	/** Writes an audit entry; answers its id. */
	audit(ctx: Context<unknown, AppMeta>, entry: Omit<AuditDoc, "_id" | "at" | "actorId" | "actorRoles" | "requestId">): Promise<string>;
	cabinetView(c: CabinetDoc): CabinetView;
	withLive(view: CabinetView, live: CabinetLive): CabinetView;
	cleanCityCache(): Promise<void>;
}

interface Vars {
	repos: {
		cities: Repository<CityDoc>;
		merchants: Repository<MerchantDoc>;
		points: Repository<PointDoc>;
		cabinets: Repository<CabinetDoc>;
		audit: Repository<AuditDoc>;
	};
}

type This = Vars & Methods & { broker: Context["broker"]; logger: any };

const merchantView = (m: MerchantDoc): MerchantView => ({
	id: m._id, name: m.name, contactPhone: m.contactPhone, commissionRate: m.commissionRate, createdAt: new Date(m.createdAt).toISOString(),
});

/** Full pricing: sizes not given keep the defaults. */
const withDefaults = (p: Partial<Pricing> | undefined, base: Pricing = DEFAULT_PRICING): Pricing => ({
	S: p?.S ?? base.S, M: p?.M ?? base.M, L: p?.L ?? base.L,
});

/** Door numbers 1..N, each once; the sizes were checked by the params schema. */
function doorProblems(doors: { no: number }[]): { field: string; message: string }[] {
	const seen = new Set<number>();
	const problems: { field: string; message: string }[] = [];
	doors.forEach((d, i) => {
		if (seen.has(d.no)) problems.push({ field: `doors[${i}].no`, message: `door number ${d.no} appears twice` });
		else if (d.no > doors.length) problems.push({ field: `doors[${i}].no`, message: `door numbers must be 1..${doors.length} (the cabinet has ${doors.length} doors)` });
		seen.add(d.no);
	});
	return problems;
}

export function createMerchantsService(config: Config, opts: { dataDir?: string | null } = {}): ServiceSchema<Settings, Methods, Vars> {
	const dataDir = opts.dataDir === undefined ? config.dataDir : opts.dataDir;
	return {
		name: "merchants",
		mixins: [createDbMixin(CATALOG_ENTITIES, { mongoUri: config.mongoUri, dataDir })],
		settings: { rest: "" },

		actions: {
			listCities: {
				rest: "GET /cities",
				auth: "public",
				summary: "Cities with their number of active points",
				params: {},
				cache: { keys: [], ttl: 60 },
				async handler(this: This): Promise<CityView[]> {
					const cities = await this.repos.cities.find({ sort: "_id" });
					return Promise.all(
						cities.map(async c => ({
							code: c._id, name: c.name, lat: c.lat, lng: c.lng,
							points: await this.repos.points.count({ cityCode: c._id, status: "active" }),
						})),
					);
				},
			},

			createCity: {
				rest: "POST /cities",
				auth: ["admin"],
				summary: "Add a city",
				params: { code: { type: "string", min: 2, max: 8, trim: true }, name: { type: "string", min: 1, max: 50, trim: true }, lat: latParam, lng: lngParam },
				async handler(this: This, ctx: Context<CreateCityParams, AppMeta>): Promise<CityView> {
					const p = ctx.params;
					if (!CITY_CODE.test(p.code)) throw invalid([{ field: "code", message: "code must be 2–8 capital letters, e.g. SH" }]);
					let city: CityDoc;
					try {
						city = await this.repos.cities.insert({ _id: p.code, name: p.name, lat: p.lat, lng: p.lng, createdAt: new Date() });
					} catch (err) {
						if (Repository.isDuplicateKeyError(err)) throw conflict(`City ${p.code} exists already`, ErrorTypes.CONFLICT, { field: "code" });
						throw err;
					}
					await this.audit(ctx, { action: "city.create", targetType: "city", targetId: city._id, changes: { name: p.name, lat: p.lat, lng: p.lng } });
					const view = { code: city._id, name: city.name, lat: city.lat, lng: city.lng, points: 0 };
					await this.cleanCityCache();
					this.broker.broadcast("merchants.city.created", { city: view });
					created(ctx, `/cities/${city._id}/points`);
					return view;
				},
			},

			createMerchant: {
				rest: "POST /merchants",
				auth: ["admin"],
				summary: "Add a merchant (commissionRate is the platform's share, 0–1)",
				params: {
					name: { type: "string", min: 1, max: 100, trim: true },
					contactPhone: { type: "string", min: 5, max: 32, trim: true, pattern: /^\+?[0-9][0-9 -]{3,30}$/ },
					commissionRate: { type: "number", min: 0, max: 1 },
				},
				async handler(this: This, ctx: Context<CreateMerchantParams, AppMeta>): Promise<MerchantView> {
					const now = new Date();
					const m = await this.repos.merchants.insert({ ...ctx.params, createdAt: now, updatedAt: now });
					await this.audit(ctx, { action: "merchant.create", targetType: "merchant", targetId: m._id, changes: { ...ctx.params } });
					this.broker.broadcast("merchants.merchant.created", { merchant: merchantView(m) });
					created(ctx, `/merchants/${m._id}`);
					return merchantView(m);
				},
			},

			getMerchant: {
				rest: "GET /merchants/:id",
				auth: ["admin", "merchant"],
				summary: "A merchant (admins, or that merchant's own accounts)",
				params: { id: idParam },
				async handler(this: This, ctx: Context<{ id: string }, AppMeta>): Promise<MerchantView> {
					this.ensureMerchantAccess(ctx, ctx.params.id, ["admin"]);
					const m = await this.repos.merchants.findById(ctx.params.id);
					if (!m) throw notFound("Merchant", { id: ctx.params.id });
					return merchantView(m);
				},
			},

			createPoint: {
				rest: "POST /points",
				auth: ["admin", "merchant"],
				summary: "Add a storage point (merchants: for themselves only)",
				params: {
					merchantId: idParam,
					cityCode: { type: "string", min: 2, max: 8 },
					name: { type: "string", min: 1, max: 100, trim: true },
					address: { type: "string", min: 1, max: 200, trim: true },
					lat: latParam,
					lng: lngParam,
					openHours: { type: "string", min: 1, max: 100, trim: true, optional: true },
					pricing: pricingParams,
				},
				async handler(this: This, ctx: Context<CreatePointParams, AppMeta>): Promise<PointView> {
					const p = ctx.params;
					this.ensureMerchantAccess(ctx, p.merchantId, ["admin"]);
					const [merchant, city] = await Promise.all([this.repos.merchants.findById(p.merchantId), this.repos.cities.findById(p.cityCode)]);
					const fields: { field: string; message: string }[] = [];
					if (!merchant) fields.push({ field: "merchantId", message: `no merchant ${p.merchantId}` });
					if (!city) fields.push({ field: "cityCode", message: `no city ${p.cityCode}` });
					if (fields.length) throw invalid(fields);
					const now = new Date();
					const point = await this.repos.points.insert({
						merchantId: p.merchantId, cityCode: p.cityCode, name: p.name, address: p.address, lat: p.lat, lng: p.lng,
						...(p.openHours ? { openHours: p.openHours } : {}),
						pricing: withDefaults(p.pricing), status: "active", doors: { S: 0, M: 0, L: 0 }, version: 1, createdAt: now, updatedAt: now,
					});
					const view = toPointView(point);
					await this.audit(ctx, { action: "point.create", targetType: "point", targetId: point._id, changes: { ...p } });
					await this.cleanCityCache();
					this.broker.broadcast("merchants.point.created", { point: view } satisfies PointChangedEvent);
					created(ctx, `/points/${point._id}`);
					return view;
				},
			},

			getPoint: {
				rest: "GET /points/:id",
				auth: "public",
				summary: "A storage point with its free doors per size and its pricing",
				params: { id: idParam },
				async handler(this: This, ctx: Context<{ id: string }, AppMeta>): Promise<PointView> {
					const point = await this.repos.points.findById(ctx.params.id);
					if (!point) throw notFound("Point", { id: ctx.params.id });
					return toPointView(point);
				},
			},

			updatePoint: {
				rest: "PATCH /points/:id",
				auth: ["admin", "merchant"],
				summary: "Change a point (e.g. {\"status\":\"disabled\"})",
				params: {
					id: idParam,
					cityCode: { type: "string", min: 2, max: 8, optional: true },
					name: { type: "string", min: 1, max: 100, trim: true, optional: true },
					address: { type: "string", min: 1, max: 200, trim: true, optional: true },
					lat: { ...latParam, optional: true },
					lng: { ...lngParam, optional: true },
					openHours: { type: "string", min: 1, max: 100, trim: true, optional: true },
					pricing: pricingParams,
					status: { type: "enum", values: [...POINT_STATUSES], optional: true },
				},
				async handler(this: This, ctx: Context<UpdatePointParams, AppMeta>): Promise<PointView> {
					const { id, pricing, ...rest } = ctx.params;
					const point = await this.loadPoint(ctx, id, ["admin"]);
					if (rest.cityCode && rest.cityCode !== point.cityCode && !(await this.repos.cities.findById(rest.cityCode))) {
						throw invalid([{ field: "cityCode", message: `no city ${rest.cityCode}` }]);
					}
					const changes: Record<string, unknown> = { ...rest };
					if (pricing) changes.pricing = withDefaults(pricing, point.pricing);
					if (Object.keys(changes).length === 0) throw invalid([{ field: "body", message: "nothing to change" }]);
					// Compare-and-set on the version: two concurrent edits cannot silently overwrite each other.
					const moved = await this.repos.points.updateWhere(
						{ _id: id, version: point.version },
						{ $set: { ...changes, version: point.version + 1, updatedAt: new Date() } },
					);
					if (moved !== 1) throw conflict("The point was changed meanwhile; read it again and retry");
					const updated = (await this.repos.points.findById(id))!;
					const view = toPointView(updated);
					await this.audit(ctx, { action: "point.update", targetType: "point", targetId: id, changes });
					await this.cleanCityCache();
					this.broker.broadcast("merchants.point.updated", { point: view } satisfies PointChangedEvent);
					return view;
				},
			},

			registerCabinet: {
				rest: "POST /cabinets",
				auth: ["admin", "merchant"],
				summary: "Register a cabinet at a point; answers its MQTT credentials (the password is shown only here)",
				params: {
					pointId: idParam,
					doors: {
						type: "array", min: 1, max: MAX_DOORS,
						items: { type: "object", strict: true, props: { no: { type: "number", integer: true, min: 1, max: MAX_DOORS }, size: { type: "enum", values: [...SIZES] } } },
					},
				},
				async handler(this: This, ctx: Context<RegisterCabinetParams, AppMeta>) {
					const problems = doorProblems(ctx.params.doors);
					if (problems.length) throw invalid(problems);
					const point = await this.loadPoint(ctx, ctx.params.pointId, ["admin"]);
					const id = this.repos.cabinets.newId();
					const secret = newCabinetSecret(config.cabinetSecretKey, id);
					const now = new Date();
					const doors: DoorEntry[] = [...ctx.params.doors].sort((a, b) => a.no - b.no).map(d => ({ no: d.no, size: d.size, disabled: false }));
					const cabinet = await this.repos.cabinets.insert({
						_id: id, pointId: point._id, merchantId: point.merchantId, doors, secretHash: secret.hash, secretNonce: secret.nonce, secretRotatedAt: now, version: 1, createdAt: now, updatedAt: now,
					});
					// The cabinet exists now and its one-time password must reach the caller: a recount that
					// keeps losing races is logged, and the next change of the point recounts it anyway.
					const updated = await this.recountPoint(point._id).catch(err => {
						this.logger.warn(`Door counts of ${point._id} not updated after registering ${cabinet._id}: ${err.message}`);
						return point;
					});
					await this.audit(ctx, { action: "cabinet.register", targetType: "cabinet", targetId: cabinet._id, changes: { pointId: point._id, doors: doors.length } });
					this.broker.broadcast("merchants.cabinet.registered", {
						cabinet: { id: cabinet._id, pointId: cabinet.pointId, merchantId: cabinet.merchantId, doors },
						point: toPointView(updated),
					} satisfies CabinetRegisteredEvent);
					created(ctx, `/cabinets/${cabinet._id}`);
					return { cabinet: this.cabinetView(cabinet), credentials: { username: cabinet._id, password: secret.password } };
				},
			},

			rotateCredentials: {
				rest: "POST /cabinets/:id/credentials",
				auth: ["admin", "merchant"],
				summary: "Replace a cabinet's MQTT secret; the old one stops working",
				params: { id: idParam },
				async handler(this: This, ctx: Context<{ id: string }, AppMeta>) {
					const cabinet = await this.loadCabinet(ctx, ctx.params.id, ["admin"]);
					const secret = newCabinetSecret(config.cabinetSecretKey, cabinet._id);
					const now = new Date();
					await this.repos.cabinets.updateById(cabinet._id, { $set: { secretHash: secret.hash, secretNonce: secret.nonce, secretRotatedAt: now, updatedAt: now } });
					await this.audit(ctx, { action: "cabinet.credentials.rotate", targetType: "cabinet", targetId: cabinet._id });
					// The MQTT side drops the cabinet's current session on this event.
					this.broker.broadcast("merchants.cabinet.credentialsRotated", { cabinetId: cabinet._id });
					return { username: cabinet._id, password: secret.password };
				},
			},

			getCabinet: {
				rest: "GET /cabinets/:id",
				auth: ["admin", "operator", "merchant"],
				summary: "A cabinet with its doors",
				params: { id: idParam },
				async handler(this: This, ctx: Context<{ id: string }, AppMeta>): Promise<CabinetView> {
					const view = this.cabinetView(await this.loadCabinet(ctx, ctx.params.id, ["admin", "operator"]));
					// The live part (link, door states) belongs to the door actors.
					const live = await cabinetLive(ctx, this.broker, view.id);
					if (live.error) this.logger.warn(`Cabinet ${view.id}: live door state unavailable (${live.error})`);
					return this.withLive(view, live);
				},
			},

			listPointCabinets: {
				rest: "GET /points/:id/cabinets",
				auth: ["admin", "operator", "merchant"],
				summary: "A point's cabinets with their doors, live (a page; same rows as GET /cabinets/:id; `live:false` and null door states when the door actors cannot be asked)",
				params: { id: idParam, ...pageParams },
				async handler(this: This, ctx: Context<{ id: string } & PageParams, AppMeta>): Promise<Page<CabinetView>> {
					const point = await this.loadPoint(ctx, ctx.params.id, ["admin", "operator"]);
					const { page, pageSize } = ctx.params;
					const query = { pointId: point._id };
					const [docs, total] = await Promise.all([
						this.repos.cabinets.find({ query, sort: "_id", limit: pageSize, offset: (page - 1) * pageSize }),
						this.repos.cabinets.count(query),
					]);
					// One doors.cabinets call per doors node for the whole page.
					const live = docs.length ? await cabinetsLive(ctx, this.broker, docs.map(c => c._id)) : new Map<string, CabinetLive>();
					const rows = docs.map(c => this.withLive(this.cabinetView(c), live.get(c._id) ?? { error: "SERVICE_UNAVAILABLE" }));
					const blind = rows.filter(r => !r.live);
					// One line per request, not per cabinet.
					if (blind.length) this.logger.warn(`Point ${point._id}: live door state unavailable for ${blind.length} of ${rows.length} cabinet(s) (${blind[0].liveError})`);
					return { rows, total, page, pageSize };
				},
			},

			listCabinets: {
				rest: "GET /cabinets",
				auth: ["admin", "operator", "merchant"],
				summary:
					"Cabinets with their link state (merchants: their own), e.g. ?online=false for the ones offline now. Every doors node is asked " +
					"which cabinets it holds; a registered cabinet no doors node holds (never connected, or offline and idle since) is offline " +
					"(lastSeenAt null: not heard since its doors node started). When a doors node cannot be asked the answer says `partial: true` " +
					"and `unavailable` (its node ids, or [\"doors\"] when the mesh has no doors node): cabinets it may hold are `online: null` " +
					"and are listed under online=false too (they may be offline; nothing is guessed).",
				params: {
					online: { type: "boolean", convert: true, optional: true },
					pointId: { ...idParam, optional: true },
					cityCode: { type: "string", min: 2, max: 8, optional: true },
					...pageParams,
				},
				async handler(this: This, ctx: Context<{ online?: boolean; pointId?: string; cityCode?: string } & PageParams, AppMeta>) {
					const { online, pointId, cityCode, page, pageSize } = ctx.params;
					const user = ctx.meta.user;
					const query: Record<string, unknown> = {};
					if (user && !user.roles.some(r => r === "admin" || r === "operator")) {
						if (!user.merchantId) throw forbidden("This account belongs to no merchant");
						query.merchantId = user.merchantId;
					}
					if (pointId) query.pointId = pointId;
					if (cityCode) {
						const inCity = await this.repos.points.find({ query: { cityCode, ...(query.merchantId ? { merchantId: query.merchantId } : {}) } });
						const ids = inCity.map(p => p._id).filter(id => !pointId || id === pointId);
						query.pointId = { $in: ids };
					}
					const links = await doorLinks(ctx, this.broker);
					const offset = (page - 1) * pageSize;
					let docs: CabinetDoc[];
					let total: number;
					if (online === undefined) {
						[docs, total] = await Promise.all([this.repos.cabinets.find({ query, sort: "_id", limit: pageSize, offset }), this.repos.cabinets.count(query)]);
					} else {
						// Offline = not online on any node asked (cabinets of a node not asked are unknown, listed too).
						// Filtered here over the ids, not with $in/$nin over every online id: on NeDB that is quadratic.
						const ids = (await this.repos.cabinets.ids(query)).filter(id => (links.links.get(id)?.online === true) === online);
						total = ids.length;
						const pageIds = ids.slice(offset, offset + pageSize);
						docs = pageIds.length ? await this.repos.cabinets.find({ query: { _id: { $in: pageIds } }, sort: "_id" }) : [];
					}
					const points = new Map(
						(await this.repos.points.find({ query: { _id: { $in: [...new Set(docs.map(c => c.pointId))] } } })).map(p => [p._id, p]),
					);
					const rows = docs.map(c => {
						const l = links.links.get(c._id);
						const p = points.get(c.pointId);
						return {
							id: c._id, pointId: c.pointId, pointName: p?.name ?? null, merchantId: c.merchantId, cityCode: p?.cityCode ?? null,
							online: linkState(c._id, l, links),
							lastSeenAt: l?.lastSeenAt ? new Date(l.lastSeenAt).toISOString() : null,
						};
					});
					return { rows, total, page, pageSize, ...(links.unavailable.length ? { partial: true, unavailable: links.unavailable } : {}) };
				},
			},

			getDoor: {
				rest: "GET /doors/:doorId",
				auth: ["admin", "operator", "merchant"],
				summary: "A door with its live state (`live:false` and null state/open/occupied when the door actors cannot be asked)",
				params: { doorId: { type: "string", min: 5, max: 90 } },
				async handler(this: This, ctx: Context<{ doorId: string }, AppMeta>) {
					const ref = parseDoorId(ctx.params.doorId);
					if (!ref) throw invalid([{ field: "doorId", message: "doorId must look like {cabinetId}:{no}" }]);
					const id = doorId(ref.cabinetId, ref.no);
					const cabinet = await this.loadCabinet(ctx, ref.cabinetId, ["admin", "operator"]);
					const door = cabinet.doors.find(d => d.no === ref.no);
					if (!door) throw notFound("Door", { doorId: id });
					const base = { id, cabinetId: cabinet._id, pointId: cabinet.pointId, no: door.no, size: door.size, disabled: !!door.disabled };
					try {
						const l = await callDoors<LiveDoorView>(ctx, this.broker, "get", { doorId: id }, ref.cabinetId);
						return { ...base, state: l.state, open: l.open, occupied: l.occupied, ...(l.orderId ? { orderId: l.orderId } : {}), live: true };
					} catch (err: any) {
						this.logger.warn(`Door ${id}: live state unavailable (${err?.type ?? err?.message})`);
						return { ...base, state: null, open: null, occupied: null, live: false, liveError: errorType(err) };
					}
				},
			},

			updateDoor: {
				rest: "PATCH /doors/:doorId",
				auth: ["admin", "operator", "merchant"],
				summary: "Disable or enable a door",
				params: { doorId: { type: "string", min: 5, max: 90 }, disabled: "boolean" },
				async handler(this: This, ctx: Context<{ doorId: string; disabled: boolean }, AppMeta>) {
					const ref = parseDoorId(ctx.params.doorId);
					if (!ref) throw invalid([{ field: "doorId", message: "doorId must look like {cabinetId}:{no}" }]);
					const id = doorId(ref.cabinetId, ref.no);
					for (let attempt = 0; attempt < 5; attempt++) {
						const cabinet = await this.loadCabinet(ctx, ref.cabinetId, ["admin", "operator"]);
						const door = cabinet.doors.find(d => d.no === ref.no);
						if (!door) throw notFound("Door", { doorId: id });
						// The door actor decides first: a door held by an order cannot be disabled (409).
						if (attempt === 0) await callDoors(ctx, this.broker, "setDisabled", { doorId: id, disabled: ctx.params.disabled }, ref.cabinetId);
						if (door.disabled !== ctx.params.disabled) {
							const doors = cabinet.doors.map(d => (d.no === ref.no ? { ...d, disabled: ctx.params.disabled } : d));
							const moved = await this.repos.cabinets.updateWhere(
								{ _id: cabinet._id, version: cabinet.version },
								{ $set: { doors, version: cabinet.version + 1, updatedAt: new Date() } },
							);
							if (moved !== 1) continue; // another door of this cabinet changed meanwhile: read again
						}
						const point = await this.recountPoint(cabinet.pointId);
						await this.audit(ctx, { action: ctx.params.disabled ? "door.disable" : "door.enable", targetType: "door", targetId: id });
						this.broker.broadcast("merchants.door.updated", {
							doorId: id, cabinetId: cabinet._id, no: ref.no, size: door.size, disabled: ctx.params.disabled, point: toPointView(point),
						} satisfies DoorUpdatedEvent);
						return { id, no: ref.no, size: door.size, disabled: ctx.params.disabled };
					}
					throw conflict("The cabinet is being changed by others; retry");
				},
			},

			openDoor: {
				rest: "POST /doors/:doorId/open",
				auth: ["admin", "operator", "merchant"],
				summary: "Open a door remotely (staff); the reason goes to the audit log",
				// Longer than the door call: the door's own command timeout decides (504 DOOR_TIMEOUT).
				timeout: config.doors.callTimeoutMs + 2000,
				params: { doorId: { type: "string", min: 5, max: 90 }, reason: { type: "string", min: 3, max: 200, trim: true } },
				async handler(this: This, ctx: Context<{ doorId: string; reason: string }, AppMeta>) {
					const ref = parseDoorId(ctx.params.doorId);
					if (!ref) throw invalid([{ field: "doorId", message: "doorId must look like {cabinetId}:{no}" }]);
					const id = doorId(ref.cabinetId, ref.no);
					const cabinet = await this.loadCabinet(ctx, ref.cabinetId, ["admin", "operator"]);
					if (!cabinet.doors.some(d => d.no === ref.no)) throw notFound("Door", { doorId: id });
					// Audited before the command goes out: an attempt to open a door is itself worth a record.
					const auditId = await this.audit(ctx, { action: "door.open", targetType: "door", targetId: id, reason: ctx.params.reason });
					let outcome = "opened";
					try {
						return await callDoors(ctx, this.broker, "operatorOpen", { doorId: id, reason: ctx.params.reason, actorId: ctx.meta.user?.id ?? null }, ref.cabinetId, {
							timeout: config.doors.callTimeoutMs,
						});
					} catch (err) {
						outcome = openOutcome(err);
						throw err;
					} finally {
						// The door's answer (or error) goes back whatever happens to this write: a lost outcome is logged.
						await this.repos.audit.updateById(auditId, { $set: { outcome, outcomeAt: new Date() } }).catch((err: Error) => {
							this.logger.warn(`Audit ${auditId} (open of ${id}): outcome ${outcome} not recorded: ${err.message}`);
						});
					}
				},
			},

			listAudit: {
				rest: "GET /admin/audit",
				auth: ["admin"],
				summary: "Catalog audit log, newest first (filter by targetId)",
				params: { targetId: { type: "string", min: 1, max: 90, optional: true }, ...pageParams },
				async handler(this: This, ctx: Context<{ targetId?: string; page: number; pageSize: number }>) {
					const query = ctx.params.targetId ? { targetId: ctx.params.targetId } : {};
					const { page, pageSize } = ctx.params;
					const [rows, total] = await Promise.all([
						this.repos.audit.find({ query, sort: "-at", limit: pageSize, offset: (page - 1) * pageSize }),
						this.repos.audit.count(query),
					]);
					return { rows: rows.map(({ _id, ...r }) => ({ id: _id, ...r })), total, page, pageSize };
				},
			},

			/** Internal: points in id order, a page at a time, for read models rebuilding (geo). */
			pointsPage: {
				visibility: "public",
				// ≤ 1000 points (≈ 600 kB) per answer: NATS refuses messages over 1 MB by default.
				params: { after: { type: "string", optional: true, max: 80 }, limit: { type: "number", integer: true, min: 1, max: 1000 } },
				async handler(this: This, ctx: Context<{ after?: string; limit: number }>): Promise<PointView[]> {
					const query = ctx.params.after ? { _id: { $gt: ctx.params.after } } : {};
					const rows = await this.repos.points.find({ query, sort: "_id", limit: ctx.params.limit });
					return rows.map(toPointView);
				},
			},

			/**
			 * Internal: points changed at or after `since`, oldest change first — read models
			 * catch up with it after missing broadcasts (a replica the sender did not know yet,
			 * a broken connection).
			 */
			pointsChangedSince: {
				visibility: "public",
				params: {
					since: { type: "date", convert: true },
					/** Continue after this id among points changed exactly at `since` (a page full of one timestamp). */
					afterId: { type: "string", optional: true, max: 80 },
					limit: { type: "number", integer: true, min: 1, max: 1000 },
				},
				async handler(this: This, ctx: Context<{ since: Date; afterId?: string; limit: number }>): Promise<PointView[]> {
					const { since, afterId, limit } = ctx.params;
					const query = afterId
						? { $or: [{ updatedAt: { $gt: since } }, { updatedAt: since, _id: { $gt: afterId } }] }
						: { updatedAt: { $gte: since } };
					const rows = await this.repos.points.find({ query, sort: ["updatedAt", "_id"], limit });
					return rows.map(toPointView);
				},
			},

			/** Internal: city codes and names (read models). */
			cities: {
				visibility: "public",
				params: {},
				async handler(this: This): Promise<{ code: string; name: string }[]> {
					return (await this.repos.cities.find({ sort: "_id" })).map(c => ({ code: c._id, name: c.name }));
				},
			},

			/** Internal: does a merchant exist (users, when creating merchant staff). */
			merchantExists: {
				visibility: "public",
				params: { id: idParam },
				async handler(this: This, ctx: Context<{ id: string }>): Promise<boolean> {
					return (await this.repos.merchants.findById(ctx.params.id)) !== null;
				},
			},

			/** Internal: the cabinet's doors as registered, and the nonce its secret derives from (door actors sign with it). */
			cabinetDoors: {
				visibility: "public",
				params: { id: idParam },
				async handler(this: This, ctx: Context<{ id: string }>) {
					const c = await this.repos.cabinets.findById(ctx.params.id);
					if (!c) throw notFound("Cabinet", { id: ctx.params.id });
					return { id: c._id, pointId: c.pointId, merchantId: c.merchantId, doors: c.doors, secretNonce: c.secretNonce };
				},
			},

			/**
			 * Internal (orders): what an order needs of a point — its merchant and commission rate,
			 * its status and tariff, and its cabinets with their doors, fullest first.
			 */
			pointForOrder: {
				visibility: "public",
				params: { pointId: idParam },
				async handler(this: This, ctx: Context<{ pointId: string }>): Promise<PointForOrder> {
					const point = await this.repos.points.findById(ctx.params.pointId);
					if (!point) throw notFound("Point", { id: ctx.params.pointId });
					const [merchant, cabinets] = await Promise.all([
						this.repos.merchants.findById(point.merchantId),
						this.repos.cabinets.find({ query: { pointId: point._id }, sort: "_id" }),
					]);
					return {
						id: point._id, merchantId: point.merchantId, commissionRate: merchant?.commissionRate ?? 0, status: point.status, pricing: point.pricing,
						cabinets: cabinets.map(c => ({ id: c._id, doors: c.doors })),
					};
				},
			},

			/** Internal: check a cabinet's MQTT login (constant time). */
			verifyCabinet: {
				visibility: "public",
				params: { username: { type: "string", min: 1, max: 80 }, password: { type: "string", min: 1, max: 200 } },
				async handler(this: This, ctx: Context<{ username: string; password: string }>) {
					const c = await this.repos.cabinets.findById(ctx.params.username);
					// Hash even on a miss, so the answer time does not tell which cabinet ids exist.
					const ok = verifyCabinetSecret(ctx.params.password, c?.secretHash ?? "0".repeat(64)) && !!c;
					return ok ? { ok: true, cabinetId: c!._id, pointId: c!.pointId, merchantId: c!.merchantId } : { ok: false };
				},
			},
		},

		methods: {
			ensureMerchantAccess(ctx: Context<unknown, AppMeta>, merchantId: string, privileged: Role[]) {
				const user = ctx.meta.user;
				if (!user) return; // the platform's own services
				if (user.roles.some(r => privileged.includes(r))) return;
				if (user.roles.includes("merchant") && user.merchantId === merchantId) return;
				throw forbidden("This belongs to another merchant");
			},

			async loadPoint(this: This, ctx: Context<unknown, AppMeta>, id: string, privileged: Role[]) {
				const point = await this.repos.points.findById(id);
				if (!point) throw notFound("Point", { id });
				this.ensureMerchantAccess(ctx, point.merchantId, privileged);
				return point;
			},

			async loadCabinet(this: This, ctx: Context<unknown, AppMeta>, id: string, privileged: Role[]) {
				const cabinet = await this.repos.cabinets.findById(id);
				if (!cabinet) throw notFound("Cabinet", { id });
				this.ensureMerchantAccess(ctx, cabinet.merchantId, privileged);
				return cabinet;
			},

			/** The point's enabled doors per size, from its cabinets (recomputed, so a repeat is harmless). */
			async recountPoint(this: This, pointId: string): Promise<PointDoc> {
				for (let attempt = 0; attempt < 10; attempt++) {
					const point = await this.repos.points.findById(pointId);
					if (!point) throw notFound("Point", { id: pointId });
					const doors = enabledDoorCounts(await this.repos.cabinets.find({ query: { pointId } }));
					const moved = await this.repos.points.updateWhere(
						{ _id: pointId, version: point.version },
						{ $set: { doors, version: point.version + 1, updatedAt: new Date() } },
					);
					if (moved === 1) return (await this.repos.points.findById(pointId))!;
				}
				throw conflict("The point is being changed by others; retry");
			},

			async audit(this: This, ctx: Context<unknown, AppMeta>, entry) {
				const user = ctx.meta.user;
				const doc = await this.repos.audit.insert({
					...entry,
					at: new Date(),
					actorId: user?.id ?? null,
					actorRoles: user?.roles ?? [],
					...(ctx.meta.requestId ? { requestId: ctx.meta.requestId } : {}),
				});
				return doc._id;
			},

			/** The catalog view with the door actors' live part, or said to be unknown (never guessed). */
			withLive(this: This, view: CabinetView, l: CabinetLive): CabinetView {
				if (l.live) {
					const byNo = new Map(l.live.doors.map(d => [d.no, d]));
					return {
						...view, online: l.live.online, lastSeenAt: l.live.lastSeenAt, live: true,
						doors: view.doors.map(d => {
							const ld = byNo.get(d.no);
							return ld ? { ...d, state: ld.state, open: ld.open, occupied: ld.occupied, ...(ld.orderId ? { orderId: ld.orderId } : {}) } : d;
						}),
					};
				}
				// A door that is reserved or holds a bag must not look free: the catalog part is known, the live part unknown.
				return {
					...view, online: null, lastSeenAt: null, live: false, liveError: l.error,
					doors: view.doors.map(d => ({ ...d, state: null, open: null, occupied: null })),
				};
			},

			cabinetView(c: CabinetDoc): CabinetView {
				return {
					id: c._id, pointId: c.pointId, merchantId: c.merchantId,
					// Live link state comes with the door actors; until a cabinet has reported it is offline.
					online: false, lastSeenAt: null, live: true,
					credentialsRotatedAt: new Date(c.secretRotatedAt).toISOString(),
					doors: c.doors.map(d => ({ id: doorId(c._id, d.no), no: d.no, size: d.size, disabled: !!d.disabled, state: d.disabled ? "disabled" : "available", open: false, occupied: false })),
					createdAt: new Date(c.createdAt).toISOString(),
				};
			},

			async cleanCityCache(this: This) {
				await this.broker.cacher?.clean("merchants.listCities**");
			},
		},

		async started(this: This) {
			if (!config.demoSeed) return;
			const summary = await seedDemoFleet(this.repos, this.logger, {
				cabinetSecretKey: config.cabinetSecretKey,
				credentialsFile: dataDir ? path.join(dataDir, "demo-cabinet-credentials.jsonl") : undefined,
			});
			// seedDemoFleet has logged what it wrote; add how to try it.
			if (summary.seeded) {
				this.logger.info("Try GET /api/v1/points/nearby?lat=31.2304&lng=121.4737, or sign in as the admin (ADMIN_USERNAME).");
			}
		},
	};
}
