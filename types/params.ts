/**
 * Params schema pieces several services share, so the same field is checked
 * the same way everywhere (API.md "Conventions").
 */

/** `page` from 1 and `pageSize` ≤ 100; query strings arrive as text, hence `convert`. */
export const pageParams = {
	page: { type: "number", integer: true, min: 1, max: 100_000, optional: true, convert: true, default: 1 },
	pageSize: { type: "number", integer: true, min: 1, max: 100, optional: true, convert: true, default: 20 },
};

export interface PageParams {
	page: number;
	pageSize: number;
}

/** The list answer of API.md. */
export interface Page<T> extends PageParams {
	rows: T[];
	total: number;
}

/** An id the platform issued: a short lower-case prefix, "_", then base64url (e.g. `ord_…`, `mer_…`). */
export const ID_PATTERN = /^[a-z]{2,4}_[A-Za-z0-9_-]{6,40}$/;
export const idParam = { type: "string", min: 5, max: 64, pattern: ID_PATTERN } as const;

export const latParam = { type: "number", min: -90, max: 90 };
export const lngParam = { type: "number", min: -180, max: 180 };
