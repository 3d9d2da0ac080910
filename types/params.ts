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

export const latParam = { type: "number", min: -90, max: 90 };
export const lngParam = { type: "number", min: -180, max: 180 };
