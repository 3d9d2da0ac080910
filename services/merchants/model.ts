/**
 * The catalog's documents (owned by the merchants service) and the views other
 * services see. Doors live inside their cabinet document: a fleet of 100 000
 * points × 24 doors would otherwise be millions of tiny documents, and a
 * cabinet's doors always change together with it. A door's id is
 * `{cabinetId}:{no}`, the registry key the door actors and PROTOCOL.md use.
 */
import type { EntityDefinition } from "../../mixins/db.mixin";
import type { DoorEntry, PointFields, PointView, SizeCounts } from "../../domain/catalog";

export interface CityDoc {
	_id: string; // the city code, e.g. "SH"
	name: string;
	lat: number;
	lng: number;
	createdAt: Date;
}

export interface MerchantDoc {
	_id: string;
	name: string;
	contactPhone: string;
	/** Platform share of revenue, 0–1. */
	commissionRate: number;
	createdAt: Date;
	updatedAt: Date;
}

export interface PointDoc extends PointFields {
	_id: string;
	/** Enabled doors per size over the point's cabinets, kept with every cabinet/door change. */
	doors: SizeCounts;
	createdAt: Date;
	updatedAt: Date;
}


export interface CabinetDoc {
	_id: string;
	pointId: string;
	merchantId: string;
	doors: DoorEntry[];
	/** SHA-256 of the cabinet's MQTT secret (the secret is 256 random bits, so a slow hash adds nothing). */
	secretHash: string;
	/** With CABINET_SECRET_KEY, derives the secret (services/merchants/credentials.ts). */
	secretNonce: string;
	secretRotatedAt: Date;
	version: number;
	createdAt: Date;
	updatedAt: Date;
}

export interface AuditDoc {
	_id: string;
	at: Date;
	actorId: string | null;
	actorRoles: string[];
	action: string;
	targetType: "city" | "merchant" | "point" | "cabinet" | "door";
	targetId: string;
	/** Field values after the change (secrets never). */
	changes?: Record<string, unknown>;
	reason?: string;
	requestId?: string;
	/** A remote door open's result, written when the door answered: "opened" or the error type. */
	outcome?: string;
	outcomeAt?: Date;
}

export const CityEntity: EntityDefinition = {
	collection: "cities",
	idPrefix: "city",
	fields: { name: "string", lat: "number", lng: "number", createdAt: "date" },
};

export const MerchantEntity: EntityDefinition = {
	collection: "merchants",
	idPrefix: "mer",
	fields: { name: "string", contactPhone: "string", commissionRate: "number", createdAt: "date", updatedAt: "date" },
};

export const PointEntity: EntityDefinition = {
	collection: "points",
	idPrefix: "pt",
	fields: {
		merchantId: "string", cityCode: "string", name: "string", address: "string", lat: "number", lng: "number",
		openHours: "string", pricing: "object", status: "string", doors: "object", version: "number",
		createdAt: "date", updatedAt: "date",
	},
	indexes: [{ fields: { merchantId: 1 } }, { fields: { cityCode: 1 } }, { fields: { updatedAt: 1 } }],
};

export const CabinetEntity: EntityDefinition = {
	collection: "cabinets",
	idPrefix: "cab",
	fields: {
		pointId: "string", merchantId: "string", doors: "array", secretHash: "string", secretNonce: "string", secretRotatedAt: "date",
		version: "number", createdAt: "date", updatedAt: "date",
	},
	indexes: [{ fields: { pointId: 1 } }, { fields: { merchantId: 1 } }],
};

export const AuditEntity: EntityDefinition = {
	collection: "catalog_audit",
	idPrefix: "aud",
	fields: {
		at: "date", actorId: "string", actorRoles: "array", action: "string", targetType: "string", targetId: "string",
		changes: "object", reason: "string", requestId: "string", outcome: "string", outcomeAt: "date",
	},
	indexes: [{ fields: { targetId: 1 } }, { fields: { at: -1 } }],
};

export const CATALOG_ENTITIES = {
	cities: CityEntity,
	merchants: MerchantEntity,
	points: PointEntity,
	cabinets: CabinetEntity,
	audit: AuditEntity,
};

export function toPointView(p: PointDoc): PointView {
	const v: PointView = {
		id: p._id, merchantId: p.merchantId, cityCode: p.cityCode, name: p.name, address: p.address,
		lat: p.lat, lng: p.lng, pricing: p.pricing, status: p.status, available: { ...p.doors },
		version: p.version, createdAt: new Date(p.createdAt).toISOString(), updatedAt: new Date(p.updatedAt).toISOString(),
	};
	if (p.openHours) v.openHours = p.openHours;
	return v;
}

/** Door ids follow PROTOCOL.md (canonical `{cabinetId}:{no}`, 2-digit padding); one definition, in the protocol module. */
export { formatDoorId as doorId, parseDoorId } from "../../domain/protocol";

/** Enabled doors per size, the point's capacity while no door actor says otherwise. */
export function enabledDoorCounts(cabinets: Pick<CabinetDoc, "doors">[]): SizeCounts {
	const counts: SizeCounts = { S: 0, M: 0, L: 0 };
	for (const c of cabinets) for (const d of c.doors) if (!d.disabled) counts[d.size]++;
	return counts;
}

