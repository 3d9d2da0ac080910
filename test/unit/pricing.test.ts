/**
 * Pricing over integer fen, checked at every boundary and as properties over
 * many generated tariffs and stays (monotone in time, never above the cap per
 * 24 h period, constant between hour boundaries).
 */
import { commissionFen, DAY_MS, HOUR_MS, priceFen } from "../../domain/pricing";

const S = { firstHours: 4, firstFen: 500, hourFen: 100, dayCapFen: 2000 };
const T0 = Date.UTC(2026, 11, 2, 8, 0, 0);
const at = (ms: number) => priceFen(S, T0, T0 + ms);

describe("price of a stay", () => {
	it("is exact at the boundaries of API.md's example tariff", () => {
		expect(at(0)).toBe(500); // the first period is owed at once
		expect(at(1)).toBe(500);
		expect(at(4 * HOUR_MS)).toBe(500);
		expect(at(4 * HOUR_MS + 1)).toBe(600); // a started hour
		expect(at(5 * HOUR_MS)).toBe(600);
		expect(at(5 * HOUR_MS + 1)).toBe(700);
		expect(at(19 * HOUR_MS)).toBe(2000); // 500 + 15 × 100 reaches the cap
		expect(at(24 * HOUR_MS)).toBe(2000);
		expect(at(DAY_MS + 1)).toBe(2100); // the second day starts with its first hour
		expect(at(DAY_MS + 20 * HOUR_MS)).toBe(4000);
		expect(at(3 * DAY_MS)).toBe(6000);
		expect(priceFen(S, T0, T0 - 5000)).toBe(500); // a clock behind: no time, not negative
	});

	it("never falls as time passes, changes only at hour boundaries, never beats the cap per 24 h period", () => {
		let seed = 42;
		const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
		for (let t = 0; t < 300; t++) {
			const p = { firstHours: 1 + rnd(8), firstFen: rnd(3000), hourFen: rnd(500), dayCapFen: 0 };
			p.dayCapFen = p.firstFen + rnd(8000);
			for (let i = 0; i < 200; i++) {
				const ms = rnd(5 * DAY_MS);
				const a = priceFen(p, T0, T0 + ms);
				const b = priceFen(p, T0, T0 + ms + rnd(HOUR_MS));
				expect(b).toBeGreaterThanOrEqual(a);
				expect(Number.isInteger(a)).toBe(true);
				expect(a).toBeLessThanOrEqual(p.dayCapFen * Math.max(1, Math.ceil(ms / DAY_MS)));
				// Constant inside an hour: the same price just after the boundary and just before the next.
				const h = Math.floor(ms / HOUR_MS) * HOUR_MS;
				expect(priceFen(p, T0, T0 + h + 1)).toBe(priceFen(p, T0, T0 + h + HOUR_MS));
			}
			// Monotone along one timeline, hour by hour.
			let last = 0;
			for (let hour = 0; hour <= 72; hour++) {
				const v = priceFen(p, T0, T0 + hour * HOUR_MS);
				expect(v).toBeGreaterThanOrEqual(last);
				last = v;
			}
		}
	});
});

describe("commission", () => {
	it("rounds half up to the fen and keeps gross = net + commission", () => {
		expect(commissionFen(700, 0.1)).toBe(70);
		expect(commissionFen(705, 0.1)).toBe(71); // 70.5 → 71
		expect(commissionFen(704, 0.1)).toBe(70);
		expect(commissionFen(0, 0.3)).toBe(0);
		expect(commissionFen(999, 1)).toBe(999);
	});
});
