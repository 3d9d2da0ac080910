/**
 * What each REST action answers on success, for the OpenAPI document (OpenAPI 3.0 schemas).
 *
 * A table keyed by action name rather than a field on every action, so that adding a route
 * touches one line here instead of the service's schema. A route with no entry is documented
 * as a generic object and listed by `missingResponses` (test/unit/openapi-responses.test.ts
 * fails on it), so a gap is visible rather than silent. Shapes follow the handlers' views
 * (toOrderView, cabinetView, PaymentView, …); `nullable` marks fields that are null rather
 * than absent.
 */
type Schema = Record<string, unknown>;

/** The success answer of one action: its status code and body (none for 204). */
export interface ResponseSpec {
	status: 200 | 201 | 204;
	description: string;
	schema?: Schema;
	/** A body that is not JSON (e.g. text/event-stream). */
	contentType?: string;
}

const ref = (name: string): Schema => ({ $ref: `#/components/schemas/${name}` });
const str: Schema = { type: "string" };
const int: Schema = { type: "integer" };
const num: Schema = { type: "number" };
const bool: Schema = { type: "boolean" };
const time: Schema = { type: "string", format: "date-time" };
const fen: Schema = { type: "integer", description: "fen (0.01 CNY)" };
// OpenAPI 3.0: a $ref takes no siblings, so a nullable reference wraps it; a nullable enum lists null.
const nullable = (s: Schema): Schema =>
	s.$ref ? { allOf: [s], nullable: true } : { ...s, nullable: true, ...(Array.isArray(s.enum) ? { enum: [...s.enum, null] } : {}) };
const arr = (items: Schema): Schema => ({ type: "array", items });
const strings = arr(str);

/** An object whose listed fields are all present; `optional` names the ones that may be absent. */
function obj(properties: Record<string, Schema>, optional: string[] = []): Schema {
	const required = Object.keys(properties).filter(k => !optional.includes(k));
	return { type: "object", properties, ...(required.length ? { required } : {}) };
}

/** API.md's list answer. */
const page = (row: Schema, extra: Record<string, Schema> = {}, optional: string[] = []): Schema =>
	obj({ rows: arr(row), total: int, page: int, pageSize: int, ...extra }, optional);

const sizes = { type: "string", enum: ["S", "M", "L"] };
const sizeCounts = obj({ S: int, M: int, L: int });
const doorState = { type: "string", enum: ["available", "reserved", "occupied", "fault", "disabled"] };
const credentials = obj({ username: str, password: { type: "string", description: "shown only in this answer" } });

/** Schemas referenced by name from the responses (components.schemas of the OpenAPI document). */
export const RESPONSE_COMPONENTS: Record<string, Schema> = {
	User: obj({ id: str, name: str, roles: strings, phone: str, username: str, merchantId: str, createdAt: time }, ["phone", "username", "merchantId", "createdAt"]),
	Session: obj({ user: ref("User"), accessToken: str, refreshToken: str, expiresIn: { type: "integer", description: "seconds the access token lives" } }),
	City: obj({ code: str, name: str, lat: num, lng: num, points: int }),
	Merchant: obj({ id: str, name: str, contactPhone: str, commissionRate: { type: "number", description: "platform share, 0–1" }, createdAt: time }),
	SizePrice: obj({ firstHours: int, firstFen: fen, hourFen: fen, dayCapFen: fen }),
	Pricing: obj({ S: ref("SizePrice"), M: ref("SizePrice"), L: ref("SizePrice") }),
	Point: obj({
		id: str, merchantId: str, cityCode: str, name: str, address: str, lat: num, lng: num, openHours: str,
		pricing: ref("Pricing"), status: { type: "string", enum: ["active", "disabled"] }, version: int,
		available: { ...sizeCounts, description: "free doors per size" }, createdAt: time, updatedAt: time,
	}, ["openHours"]),
	/** A point in search and city lists. */
	PointSummary: obj({ id: str, name: str, address: str, lat: num, lng: num, available: sizeCounts, pricing: ref("Pricing") }, ["pricing"]),
	CabinetDoor: obj({
		id: { type: "string", description: "{cabinetId}:{no}" }, no: int, size: sizes, disabled: bool,
		state: nullable(doorState), open: nullable(bool), occupied: nullable(bool), orderId: str,
	}, ["disabled", "orderId"]),
	Cabinet: obj({
		id: str, pointId: str, merchantId: str, online: nullable(bool), lastSeenAt: nullable(time),
		live: { type: "boolean", description: "false: the door actors could not be asked; door state/open/occupied are null" },
		liveError: str, credentialsRotatedAt: time, createdAt: time, doors: arr(ref("CabinetDoor")),
	}, ["liveError", "credentialsRotatedAt", "createdAt"]),
	/** A door as its actor answers (after a remote open). */
	DoorLive: obj({ id: str, no: int, size: sizes, state: doorState, open: bool, occupied: bool, orderId: nullable(str), reservedUntil: nullable(time), version: int }),
	Order: obj({
		id: str, userId: str, pointId: str, cabinetId: str, doorId: str, doorNo: int, size: sizes,
		status: { type: "string", enum: ["reserved", "depositing", "stored", "paying", "paid", "picking_up", "completed", "cancelled", "expired"] },
		reservedUntil: time, storedFrom: nullable(time), paymentId: nullable(str), amountFen: nullable(fen), paidAt: nullable(time),
		completedAt: nullable(time), anomalies: strings, refundProposed: nullable(obj({ reason: str, at: time })), createdAt: time, updatedAt: time,
	}),
	Payment: obj({
		id: str, orderId: str, amountFen: fen, status: { type: "string", enum: ["pending", "captured", "failed"] }, provider: str,
		refundedFen: fen, createdAt: time, capturedAt: nullable(time),
	}),
	Refund: obj({ id: str, paymentId: str, orderId: str, amountFen: fen, reason: str, status: { type: "string", enum: ["requested", "done"] }, createdAt: time }),
	Alert: obj({
		id: str, name: str, severity: { type: "string", enum: ["P1", "P2", "P3"] }, state: { type: "string", enum: ["pending", "firing", "resolved"] },
		labels: { type: "object", additionalProperties: str }, summary: str, startsAt: nullable(time), endsAt: nullable(time), silencedBy: str, inhibitedBy: str,
	}, ["silencedBy", "inhibitedBy"]),
	Silence: obj({ id: str, matchers: arr(obj({ label: str, value: str, regex: bool }, ["regex"])), startsAt: time, endsAt: time, comment: str, createdBy: str }),
};

const ok = (schema: Schema, description = "OK"): ResponseSpec => ({ status: 200, description, schema });
const created = (schema: Schema, description = "Created"): ResponseSpec => ({ status: 201, description, schema });

/** Every REST action's success answer, by action name. */
export const RESPONSES: Record<string, ResponseSpec> = {
	// users
	"users.register": created(ref("Session"), "Signed up and signed in"),
	"users.login": ok(ref("Session")),
	"users.refresh": ok(ref("Session"), "A new pair; the old refresh token stops working"),
	"users.logout": { status: 204, description: "Session revoked" },
	"users.me": ok(ref("User")),
	"users.createStaff": created(ref("User")),
	"users.getAccount": ok(ref("User"), "A staff or customer account by id (where a created staff account's Location points)"),

	// catalog
	"merchants.listCities": ok(arr(ref("City"))),
	"merchants.createCity": created(ref("City")),
	"merchants.createMerchant": created(ref("Merchant")),
	"merchants.getMerchant": ok(ref("Merchant")),
	"merchants.createPoint": created(ref("Point")),
	"merchants.getPoint": ok(ref("Point")),
	"merchants.updatePoint": ok(ref("Point")),
	"merchants.registerCabinet": created(obj({ cabinet: ref("Cabinet"), credentials }), "Registered; the cabinet's MQTT password is shown only here"),
	"merchants.rotateCredentials": ok(credentials, "New credentials; the old password stops working"),
	"merchants.getCabinet": ok(ref("Cabinet")),
	"merchants.updateDoor": ok(obj({ id: str, no: int, size: sizes, disabled: bool })),
	"merchants.openDoor": ok(ref("DoorLive"), "The cabinet acked the unlock"),
	"merchants.listAudit": ok(page(obj({
		id: str, action: str, targetType: str, targetId: str, reason: str, outcome: str, at: time, actorId: str, actorRoles: strings, requestId: str,
	}, ["reason", "outcome", "requestId"]))),
	// CONTRACTS.md (branch i14-ops): written from the contract, ahead of the routes.
	"merchants.listPointCabinets": ok(page(ref("Cabinet"))),
	"merchants.listCabinets": ok(page(
		obj({ id: str, pointId: str, pointName: str, merchantId: str, cityCode: str, online: nullable(bool), lastSeenAt: nullable(time) }),
		{ partial: bool, unavailable: strings }, ["partial", "unavailable"],
	)),
	"merchants.getDoor": ok(obj({
		id: str, cabinetId: str, pointId: str, no: int, size: sizes, disabled: bool,
		state: nullable(doorState), open: nullable(bool), occupied: nullable(bool), orderId: str, live: bool, liveError: str,
	}, ["orderId", "liveError"])),

	// finding a point
	"geo.nearby": ok(obj({
		rows: arr(obj({
			id: str, name: str, address: str, lat: num, lng: num, distance: { type: "integer", description: "metres" }, available: sizeCounts,
			fromFen: nullable({ ...fen, description: "first-period price of the size asked (else of the cheapest size with a free door)" }),
		})),
	}), "Nearest first"),
	"geo.search": ok(page(ref("PointSummary"))),
	"geo.cityPoints": ok(page(ref("PointSummary"))),
	"geo.cityMap": ok(obj({ res: int, cells: arr(obj({ h3: str, points: int, availableDoors: int })) })),

	// orders
	"orders.create": created(ref("Order"), "Reserved: a door is held until reservedUntil"),
	"orders.list": ok(page(ref("Order"))),
	"orders.get": ok(ref("Order")),
	"orders.open": ok(ref("Order"), "The cabinet acked the unlock"),
	"orders.quote": ok(obj({ amountFen: fen, storedFrom: time, until: time }), "What checkout would charge now"),
	"orders.checkout": ok(obj({ payment: nullable(ref("Payment")), order: ref("Order") }), "A pending payment (order paying); payment null when nothing is owed"),
	"orders.cancel": ok(ref("Order")),
	"orders.refund": created(ref("Refund")),

	// payments and money
	"billing.notifySandbox": ok(obj({ ok: bool, outcome: str })),
	"billing.getPayment": ok(ref("Payment")),
	"billing.sandboxPay": ok(obj({ ok: bool, notified: bool, outcome: str }, ["outcome"]), "The sandbox sent its signed notification"),
	"billing.ledger": ok(page(obj({
		_id: str, txnId: str, kind: str, account: str, debitFen: fen, creditFen: fen, merchantId: str, paymentId: str, orderId: str, at: time, createdAt: time,
	}, ["merchantId", "paymentId", "orderId", "createdAt"]))),
	"billing.settlements": ok(obj({
		rows: arr(obj({ merchantId: str, date: { type: "string", format: "date" }, grossFen: fen, commissionFen: fen, refundsFen: fen, netFen: fen })),
	}), "Daily statements (Asia/Shanghai days)"),
	"billing.reconciliation": ok(obj({
		date: { type: "string", format: "date" }, payments: int, capturedFen: fen, entries: int,
		mismatches: arr(obj({ kind: { type: "string", enum: ["payment_without_entries", "entries_without_payment", "amount_mismatch", "unbalanced"] }, paymentId: str, detail: str })),
		inFlight: { ...strings, description: "payments whose ledger entries are still being written" },
	})),

	// alerts
	"alerts.list": ok(page(ref("Alert"))),
	"alerts.createSilence": created(ref("Silence")),
	"alerts.listSilences": ok(page(ref("Silence")), "Silences still in force, soonest to end first"),
	"alerts.expireSilence": ok(obj({ id: str, endsAt: time })),
};

/** The actions among `routes` that have no response schema yet. */
export function missingResponses(routes: { action: string }[]): string[] {
	return routes.filter(r => !RESPONSES[r.action]).map(r => r.action);
}
