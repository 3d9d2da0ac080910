/**
 * The catalog's shared vocabulary: door sizes, a point's tariff (integer fen)
 * and a point as every service other than merchants sees it. Merchants owns
 * the documents (services/merchants/model.ts); geo, orders and billing read
 * these shapes from events and answers.
 */

export const SIZES = ["S", "M", "L"] as const;
export type Size = (typeof SIZES)[number];
export type SizeCounts = Record<Size, number>;

export const POINT_STATUSES = ["active", "disabled"] as const;
export type PointStatus = (typeof POINT_STATUSES)[number];

/** Tariff of one door size, all money in fen (see API.md "pricing"). */
export interface SizePrice {
	firstHours: number;
	firstFen: number;
	hourFen: number;
	dayCapFen: number;
}
export type Pricing = Record<Size, SizePrice>;

export const DEFAULT_PRICING: Pricing = {
	S: { firstHours: 4, firstFen: 500, hourFen: 100, dayCapFen: 2000 },
	M: { firstHours: 4, firstFen: 800, hourFen: 150, dayCapFen: 3000 },
	L: { firstHours: 4, firstFen: 1200, hourFen: 200, dayCapFen: 4000 },
};

/** A door as the catalog registers it inside its cabinet. */
export interface DoorEntry {
	no: number;
	size: Size;
	disabled: boolean;
}

/** What a point is, in the store and in every view of it. */
export interface PointFields {
	merchantId: string;
	cityCode: string;
	name: string;
	address: string;
	lat: number;
	lng: number;
	openHours?: string;
	pricing: Pricing;
	status: PointStatus;
	/** Grows with every change, so read models can ignore an older event that arrives late. */
	version: number;
}

/** A point as read models (geo) and clients see it. */
export interface PointView extends PointFields {
	id: string;
	/** Free doors per size. Until door actors report, an enabled door counts as free. */
	available: SizeCounts;
	createdAt: string;
	updatedAt: string;
}

/** What the orders service needs of a point (merchants.pointForOrder). */
export interface PointForOrder {
	id: string;
	merchantId: string;
	/** The merchant's commission rate now (an order keeps the one it was made with). */
	commissionRate: number;
	status: PointStatus;
	pricing: Pricing;
	cabinets: { id: string; doors: DoorEntry[] }[];
}
