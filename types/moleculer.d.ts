/**
 * Moleculer augmentations: access rules are declared on the action itself and
 * enforced by `middlewares/access.middleware.ts` for every caller that comes
 * through the HTTP edge, and by the gateway before it forwards a call.
 */
import "moleculer";
import type { AccessRule } from "./auth";

declare module "moleculer" {
	interface ActionSchema {
		/**
		 * Who may call this action from the outside:
		 * `"public"` anyone; `"signedIn"` any valid access token;
		 * a list of roles: a token holding at least one of them.
		 * Omitted on an action with `rest` means `"signedIn"` (secure by default).
		 */
		auth?: AccessRule;
		/** OpenAPI: one-line summary of the route. */
		summary?: string;
		/** `"credentials"`: sign-up/sign-in routes, held to the stricter per-IP limit. */
		rateLimit?: "credentials";
		/** Per-action request timeout (ms), read by Moleculer's timeout middleware (missing from its typings). */
		timeout?: number;
		/** Honours the `Idempotency-Key` header (API.md "Conventions"): the gateway passes it on in `ctx.meta.idempotencyKey`. */
		idempotent?: boolean;
		/**
		 * Signed by its sender over the raw body (payment notifications): the gateway passes the body as
		 * received in `ctx.meta.rawBody` and these request headers in `ctx.meta.headers`.
		 */
		rawBody?: { headers: string[] };
	}
}
