/**
 * Every error leaves the gateway in the shape of API.md:
 * `{name, message, code, type, data}` with the HTTP status as `code`.
 * Mesh trouble (no node for the service, timeout, open circuit breaker) is
 * 503 SERVICE_UNAVAILABLE; anything unexpected is a 500 that hides its
 * internals and carries the request id for the logs.
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

const BODY_PARSER_TYPES: Record<string, [number, string, string]> = {
	"entity.too.large": [413, ErrorTypes.PAYLOAD_TOO_LARGE, "Request body is too large"],
	"entity.parse.failed": [400, ErrorTypes.INVALID_REQUEST_BODY, "Request body is not valid JSON"],
	"encoding.unsupported": [415, ErrorTypes.INVALID_REQUEST_BODY, "Unsupported content encoding"],
	"charset.unsupported": [415, ErrorTypes.INVALID_REQUEST_BODY, "Unsupported charset"],
};

export function toErrorBody(err: any, requestId?: string): ErrorBody {
	// body-parser errors carry `status` and a dotted `type`.
	if (err && typeof err.type === "string" && BODY_PARSER_TYPES[err.type]) {
		const [code, type, message] = BODY_PARSER_TYPES[err.type];
		return { name: "MoleculerClientError", message, code, type };
	}
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
		return { name: "ValidationError", message: err.message || "Invalid input", code: 422, type: ErrorTypes.VALIDATION_ERROR, data: fieldErrors(err.data) };
	}
	if (Number.isInteger(code) && code >= 400 && code < 500) {
		const body: ErrorBody = { name: err.name || "MoleculerClientError", message: err.message, code, type: type ?? defaultType(code) };
		if (err.data !== undefined) body.data = err.data;
		// moleculer-web's own 401 uses NO_TOKEN/INVALID_TOKEN; the contract's generic type is UNAUTHORIZED.
		if (code === 401 && type === "NO_TOKEN") body.type = ErrorTypes.UNAUTHORIZED;
		return body;
	}
	if (Number.isInteger(code) && (code === 503 || code === 504) && type) {
		return { name: err.name, message: err.message, code, type, data: err.data };
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
	if (!Array.isArray(data)) return data;
	return data.flatMap((e: any) => {
		const { nodeID: _n, action: _a, ...entry } = e ?? {};
		if (entry.type !== "objectStrict" || typeof entry.actual !== "string") return [entry];
		const prefix = entry.field ? `${entry.field}.` : "";
		return entry.actual.split(",").map((name: string) => ({
			type: "objectStrict",
			field: prefix + name.trim(),
			message: `Unknown field '${prefix + name.trim()}'`,
		}));
	});
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
