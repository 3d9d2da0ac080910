/**
 * Which failures say something about the mesh or a service — no answer, no
 * endpoint, a crash — rather than about the thing asked for. Circuit breakers
 * count only these (ARCHITECTURE.md "Failure isolation"): a domain answer about
 * one cabinet or door (CABINET_OFFLINE, NOT_OWNER, DOOR_TIMEOUT, a 409) is the
 * service working, and counting it would shut the path to every other cabinet.
 */

/** Moleculer's own error types for "the call did not get a real answer". */
export const NO_ANSWER_TYPES: ReadonlySet<string> = new Set([
	"REQUEST_TIMEOUT", "SERVICE_NOT_AVAILABLE", "SERVICE_NOT_FOUND", "BROKER_DISCONNECTED", "REQUEST_REJECTED", "REQUEST_SKIPPED", "QUEUE_FULL",
]);

const RELAYED = Symbol("relayed");

/** Marks a no-answer error that belongs to a nested call, not to the endpoint that relays it. */
export function markRelayed(err: object): void {
	Object.defineProperty(err, RELAYED, { value: true, enumerable: false });
}

export function isMeshFailure(err: unknown): boolean {
	if (!err || typeof err !== "object" || (err as Record<symbol, unknown>)[RELAYED]) return false;
	const { type, code } = err as { type?: unknown; code?: unknown };
	if (typeof type === "string" && type !== "") return NO_ANSWER_TYPES.has(type);
	// An error without a type is not one of ours or Moleculer's answers: a crash, unless it says it is the caller's fault.
	const status = Number(code);
	return !(status >= 400 && status < 500);
}

/** The type a failure reports (API.md's error types, Moleculer's), or SERVICE_UNAVAILABLE when it has none. */
export function errorType(err: unknown): string {
	const type = (err as { type?: unknown } | null)?.type;
	return typeof type === "string" ? type : "SERVICE_UNAVAILABLE";
}

/** The call got no answer at all from the node it went to: nothing is known to have happened there. */
export function isUnanswered(err: unknown): boolean {
	const type = (err as { type?: unknown } | null)?.type;
	return typeof type === "string" && (type === "REQUEST_TIMEOUT" || type === "SERVICE_NOT_AVAILABLE" || type === "SERVICE_NOT_FOUND" || type === "BROKER_DISCONNECTED");
}
