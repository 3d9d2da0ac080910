/**
 * Phone numbers are stored in E.164. Mainland China mobile numbers (the
 * platform's users) may be given without the country code: 11 digits
 * starting with 1[3-9]. Other countries must be given with `+`.
 */
const CN_MOBILE = /^1[3-9]\d{9}$/;
const E164 = /^\+[1-9]\d{6,14}$/;

/** The canonical E.164 form, or `null` when the input is not a valid phone number. */
export function normalizePhone(input: string): string | null {
	const compact = input.replace(/[\s()-]/g, "");
	if (CN_MOBILE.test(compact)) return `+86${compact}`;
	let candidate = compact;
	if (candidate.startsWith("00")) candidate = `+${candidate.slice(2)}`;
	if (!E164.test(candidate)) return null;
	if (candidate.startsWith("+86") && !CN_MOBILE.test(candidate.slice(3))) return null;
	return candidate;
}

/** Does `login` look like a phone number rather than a user name? */
export function looksLikePhone(login: string): boolean {
	return /^[+0-9][0-9\s()-]*$/.test(login);
}
