export const ROLES = ["user", "merchant", "operator", "admin"] as const;
export type Role = (typeof ROLES)[number];

export type AccessRule = "public" | "signedIn" | Role[];

/** What the gateway puts in `ctx.meta.user`: a few fields, since meta travels with every nested call. */
export interface AuthUser {
	id: string;
	roles: Role[];
	merchantId?: string;
	/** Session id the access token belongs to. */
	sid: string;
}

/** `ctx.meta` of calls that came through the HTTP gateway. */
export interface AppMeta {
	user?: AuthUser | null;
	/** Set by the gateway: the call came from the outside and access rules apply. */
	viaGateway?: boolean;
	requestId?: string;
	clientIp?: string;
	/** The `Idempotency-Key` header, on actions that declare `idempotent`. */
	idempotencyKey?: string;
	/** The body as received, on actions that declare `rawBody` (signature checks). */
	rawBody?: string;
	/** The request headers such an action named (lower-case). */
	headers?: Record<string, string>;
	/** HTTP status the gateway should answer with (moleculer-web). */
	$statusCode?: number;
	/** Location header of a 201 answer (lib/created.ts). */
	$location?: string;
	$responseHeaders?: Record<string, string>;
	/** The answer is already encoded (a string) in this type: the gateway sends it as it is (moleculer-web). */
	$responseType?: string;
}
