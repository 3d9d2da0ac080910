/**
 * Every error leaves the gateway in the shape of API.md:
 * `{name, message, code, type, data}` with the HTTP status as `code`.
 * Mesh trouble (no node for the service, timeout, open circuit breaker) is
 * 503 SERVICE_UNAVAILABLE; anything unexpected is a 500 that hides its
 * internals and carries the request id for the logs.
 *
 * What an error carries back is bounded: validation errors echo the submitted
 * value, and a hostile one can be as large and as deep as the body allowed.
 */
import { ErrorTypes } from "../../types/errors";

export interface ErrorBody {
	name: string;
	message: string;
	code: number;
	type: string;
	data?: unknown;
}

const UNAVAILABLE_TYPES = new Set([
	"SERVICE_NOT_FOUND", "SERVICE_NOT_AVAILABLE", "REQUEST_TIMEOUT", "SERVICE_UNAVAILABLE",
	"BROKER_DISCONNECTED", "REQUEST_SKIPPED", "REQUEST_REJECTED", "QUEUE_FULL", "CIRCUIT_BREAKER_OPEN",
]);

/** Bounds of anything an error echoes. */
export const ECHO_LIMITS = { depth: 3, string: 120, entries: 20, fieldErrors: 20 };

/**
 * A copy of `value` small enough to send back: strings cut, at most a few
 * entries per level, nothing below `depth`. Never throws (getters, cycles and
 * exotic objects become "…").
 */
export function boundForEcho(value: unknown, depth = ECHO_LIMITS.depth): unknown {
	try {
		if (value === null || typeof value === "number" || typeof value === "boolean") return value;
		if (typeof value === "string") return value.length > ECHO_LIMITS.string ? `${value.slice(0, ECHO_LIMITS.string)}…` : value;
		if (typeof value !== "object" || depth <= 0) return value === undefined ? undefined : "…";
		if (Array.isArray(value)) {
			const out = value.slice(0, ECHO_LIMITS.entries).map(v => boundForEcho(v, depth - 1));
			if (value.length > ECHO_LIMITS.entries) out.push(`+${value.length - ECHO_LIMITS.entries} more`);
			return out;
		}
		const out: Record<string, unknown> = {};
		let n = 0;
		for (const key of Object.keys(value)) {
			if (n++ === ECHO_LIMITS.entries) {
				out["…"] = "more keys";
				break;
			}
			Object.defineProperty(out, boundForEcho(key) as string, { value: boundForEcho((value as Record<string, unknown>)[key], depth - 1), enumerable: true });
		}
		return out;
	} catch {
		return "…";
	}
}

export function toErrorBody(err: any, requestId?: string): ErrorBody {
	const code = Number(err?.code);
	const type = typeof err?.type === "string" ? err.type : undefined;

	// moleculer-web's own ServiceUnavailableError has no type.
	if ((type && UNAVAILABLE_TYPES.has(type)) || (code === 503 && !type)) {
		return {
			name: "MoleculerRetryableError",
			message: "Service temporarily unavailable, try again shortly",
			code: 503,
			type: ErrorTypes.SERVICE_UNAVAILABLE,
			data: { reason: type ?? "NO_ENDPOINT", ...(requestId ? { requestId } : {}) },
		};
	}
	if (type === "VALIDATION_ERROR" || err?.name === "ValidationError") {
		return { name: "ValidationError", message: boundForEcho(err.message || "Invalid input") as string, code: 422, type: ErrorTypes.VALIDATION_ERROR, data: fieldErrors(err.data) };
	}
	if (Number.isInteger(code) && code >= 400 && code < 500) {
		const body: ErrorBody = { name: err.name || "MoleculerClientError", message: boundForEcho(err.message) as string, code, type: type ?? defaultType(code) };
		if (err.data !== undefined) body.data = boundForEcho(err.data);
		// moleculer-web's own 401 uses NO_TOKEN/INVALID_TOKEN; the contract's generic type is UNAUTHORIZED.
		if (code === 401 && type === "NO_TOKEN") body.type = ErrorTypes.UNAUTHORIZED;
		return body;
	}
	if (Number.isInteger(code) && (code === 503 || code === 504) && type) {
		return { name: err.name, message: boundForEcho(err.message) as string, code, type, data: boundForEcho(err.data) };
	}
	return {
		name: "MoleculerServerError",
		message: "Internal error",
		code: 500,
		type: ErrorTypes.INTERNAL_ERROR,
		data: requestId ? { requestId } : undefined,
	};
}

/**
 * fastest-validator reports unknown fields as one `objectStrict` entry with the
 * names in `actual`; the contract lists fields, so give each its own entry.
 */
function fieldErrors(data: unknown): unknown {
	if (!Array.isArray(data)) return boundForEcho(data);
	const entries = data.flatMap((e: any) => {
		const { nodeID: _n, action: _a, ...entry } = e ?? {};
		if (entry.type !== "objectStrict" || typeof entry.actual !== "string") return [entry];
		const prefix = entry.field ? `${entry.field}.` : "";
		return entry.actual.split(",").map((name: string) => ({
			type: "objectStrict",
			field: prefix + name.trim(),
			message: `Unknown field '${prefix + name.trim()}'`,
		}));
	});
	return boundForEcho(entries.slice(0, ECHO_LIMITS.fieldErrors)) as unknown[];
}

function defaultType(code: number): string {
	switch (code) {
		case 400: return ErrorTypes.VALIDATION_ERROR;
		case 401: return ErrorTypes.UNAUTHORIZED;
		case 403: return ErrorTypes.FORBIDDEN;
		case 404: return ErrorTypes.NOT_FOUND;
		case 409: return ErrorTypes.CONFLICT;
		case 413: return ErrorTypes.PAYLOAD_TOO_LARGE;
		case 422: return ErrorTypes.VALIDATION_ERROR;
		case 429: return ErrorTypes.RATE_LIMITED;
		default: return "CLIENT_ERROR";
	}
}
