/**
 * What a stay costs (API.md "pricing"), in integer fen. Pure.
 *
 * - The first `firstHours` hours cost `firstFen` (also a stay of a minute).
 * - Each started hour after that costs `hourFen`.
 * - No 24 h period of the stay, counted from when the bag went in, costs more
 *   than `dayCapFen`; the first period includes the first-hours price.
 *
 * So the price never falls as time passes, changes only at hour boundaries,
 * and a stay of n full days costs at most n × dayCapFen.
 */
import type { SizePrice } from "./catalog";

export const HOUR_MS = 3_600_000;
export const DAY_MS = 24 * HOUR_MS;

/** Started hours in a span: 0 ms → 0, 1 ms → 1, exactly 1 h → 1, 1 h + 1 ms → 2. */
export const startedHours = (ms: number) => Math.ceil(Math.max(0, ms) / HOUR_MS);

/** The price of a stay from `fromMs` to `untilMs` (until before from counts as zero time). */
export function priceFen(p: SizePrice, fromMs: number, untilMs: number): number {
	const stay = Math.max(0, untilMs - fromMs);
	const fullDays = Math.floor(stay / DAY_MS);
	const rest = stay - fullDays * DAY_MS;
	const dayCost = (day: number, ms: number) => {
		const hours = startedHours(ms);
		const raw = day === 0 ? p.firstFen + p.hourFen * Math.max(0, hours - p.firstHours) : p.hourFen * hours;
		return Math.min(p.dayCapFen, raw);
	};
	let total = 0;
	for (let d = 0; d < fullDays; d++) total += dayCost(d, DAY_MS);
	// The running period (or the first, for a stay shorter than a day; an exact number of days has none).
	if (rest > 0 || fullDays === 0) total += dayCost(fullDays, rest);
	return total;
}

/**
 * The platform's share of `grossFen` at `commissionRate` (0–1), rounded half up
 * to the fen. Counted in integer hundredths of a basis point, so no binary
 * fraction (0.1 × 705 = 70.50000000000001) decides a fen.
 */
export function commissionFen(grossFen: number, commissionRate: number): number {
	const rate = Math.round(commissionRate * 1_000_000);
	return Math.floor((grossFen * rate + 500_000) / 1_000_000);
}
