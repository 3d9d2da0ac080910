/**
 * The error vocabulary of API.md. Caller mistakes are `MoleculerClientError`
 * (4xx), transient trouble `MoleculerRetryableError` (503/504). Across the
 * network errors arrive as plain objects: branch on `type`/`code`, never `instanceof`.
 */
import { Errors } from "moleculer";

const { MoleculerClientError, MoleculerRetryableError } = Errors;

export const ErrorTypes = {
	VALIDATION_ERROR: "VALIDATION_ERROR",
	UNAUTHORIZED: "UNAUTHORIZED",
	FORBIDDEN: "FORBIDDEN",
	NOT_FOUND: "NOT_FOUND",
	CONFLICT: "CONFLICT",
	RATE_LIMITED: "RATE_LIMITED",
	SERVICE_UNAVAILABLE: "SERVICE_UNAVAILABLE",
	PAYLOAD_TOO_LARGE: "PAYLOAD_TOO_LARGE",
	INVALID_REQUEST_BODY: "INVALID_REQUEST_BODY",
	UNSUPPORTED_MEDIA_TYPE: "UNSUPPORTED_MEDIA_TYPE",
	HEADERS_TOO_LARGE: "HEADERS_TOO_LARGE",
	INVALID_REQUEST: "INVALID_REQUEST",
	IDEMPOTENCY_KEY_REUSED: "IDEMPOTENCY_KEY_REUSED",
	IDEMPOTENCY_KEY_IN_USE: "IDEMPOTENCY_KEY_IN_USE",
	INVALID_IDEMPOTENCY_KEY: "INVALID_IDEMPOTENCY_KEY",
	INTERNAL_ERROR: "INTERNAL_ERROR",
	PHONE_TAKEN: "PHONE_TAKEN",
	USERNAME_TAKEN: "USERNAME_TAKEN",
	INVALID_CREDENTIALS: "INVALID_CREDENTIALS",
	TOKEN_EXPIRED: "TOKEN_EXPIRED",
	INVALID_TOKEN: "INVALID_TOKEN",
	SESSION_REVOKED: "SESSION_REVOKED",
	REFRESH_TOKEN_REUSED: "REFRESH_TOKEN_REUSED",
	LOGIN_THROTTLED: "LOGIN_THROTTLED",
	INVALID_SIGNATURE: "INVALID_SIGNATURE",
} as const;

export type ErrorType = (typeof ErrorTypes)[keyof typeof ErrorTypes];

export const unauthorized = (message: string, type: ErrorType = ErrorTypes.UNAUTHORIZED, data?: unknown) =>
	new MoleculerClientError(message, 401, type, data);

export const forbidden = (message = "You may not do this", data?: unknown) =>
	new MoleculerClientError(message, 403, ErrorTypes.FORBIDDEN, data);

export const notFound = (what: string, data?: unknown) =>
	new MoleculerClientError(`${what} not found`, 404, ErrorTypes.NOT_FOUND, data);

export const conflict = (message: string, type: ErrorType | string = ErrorTypes.CONFLICT, data?: unknown) =>
	new MoleculerClientError(message, 409, type, data);

/** 422 with the same `data` shape as a params validation error: a list of `{field, type, message}`. */
export const invalid = (fields: { field: string; message: string; type?: string }[]) =>
	new Errors.ValidationError(
		fields.map(f => f.message).join("; "),
		ErrorTypes.VALIDATION_ERROR,
		fields.map(f => ({ type: f.type ?? "invalid", ...f })),
	);

export const rateLimited = (message: string, retryAfterSec: number, type: ErrorType = ErrorTypes.RATE_LIMITED) =>
	new MoleculerClientError(message, 429, type, { retryAfter: retryAfterSec });

export const serviceUnavailable = (message = "Service temporarily unavailable", data?: unknown) =>
	new MoleculerRetryableError(message, 503, ErrorTypes.SERVICE_UNAVAILABLE, data);
