/**
 * The alert lifecycle and the DingTalk channel, pure: signing against a vector
 * computed outside this code base, what DingTalk's answers mean, the message
 * and its size limit, Alertmanager's for/clear, grouping timings,
 * send_resolved, silences, inhibition, and a robot's send plan.
 */
import { classifyAnswer, dingtalkSign, MAX_MARKDOWN_BYTES, renderMessage, signedUrl, type MessageAlert } from "../../services/alerts/dingtalk";
import {
	advance, backoffMs, fingerprint, flush, inhibitedBy, MAX_PER_DIGEST, matches, observe, plan, silencedBy,
	type AlertRecord, type GroupState, type RuleSpec, type Signal,
} from "../../services/alerts/engine";
import { INHIBIT_RULES, RateWindow } from "../../services/alerts/rules";

describe("DingTalk signing", () => {
	it("matches a vector computed independently (Python hmac/base64/quote_plus, as DingTalk's own sample)", () => {
		// python3 -c "import hmac,hashlib,base64,urllib.parse; s='SECb1e3…e8f9'; t='1700000000000';
		//   print(urllib.parse.quote_plus(base64.b64encode(hmac.new(s.encode(), (t+'\n'+s).encode(), hashlib.sha256).digest())))"
		const secret = "SECb1e3f7a2c9d04e5f8a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9";
		expect(dingtalkSign(secret, 1700000000000)).toBe("QKmC7mIMY3%2BYO1hAjLOthIdgVsPECIDR31saZK%2F7dIw%3D");
		expect(signedUrl("https://oapi.dingtalk.com/robot/send?access_token=abc", secret, 1700000000000)).toBe(
			"https://oapi.dingtalk.com/robot/send?access_token=abc&timestamp=1700000000000&sign=QKmC7mIMY3%2BYO1hAjLOthIdgVsPECIDR31saZK%2F7dIw%3D",
		);
	});

	it("leaves an unsigned robot's webhook alone", () => {
		expect(signedUrl("https://x/robot/send?access_token=a", undefined, 1)).toBe("https://x/robot/send?access_token=a");
	});
});

describe("what DingTalk's answer means", () => {
	it.each([
		[200, { errcode: 0, errmsg: "ok" }, "sent"],
		[200, { errcode: -1, errmsg: "系统繁忙" }, "retry"],
		[502, null, "retry"],
		[429, null, "retry"],
		[200, null, "retry"],
		[200, { errcode: 130101, errmsg: "send too fast" }, "throttled"],
		[200, { errcode: 310000, errmsg: "sign not match" }, "misconfigured"],
		[200, { errcode: 300001, errmsg: "token is not exist" }, "disabled"],
		[200, { errcode: 460101, errmsg: "message too long" }, "rejected"],
		[404, null, "misconfigured"],
	])("HTTP %i %j → %s", (status, body, kind) => {
		expect(classifyAnswer(status, body).kind).toBe(kind);
	});
});

const alertOf = (i: number, severity: MessageAlert["severity"] = "P2", state: MessageAlert["state"] = "firing"): MessageAlert => ({
	name: "DoorFault", severity, state, labels: { alertname: "DoorFault", cabinetId: `cab_${i}`, doorId: `cab_${i}:1`, pointId: "pnt_1" },
	summary: `柜门异常 Door cab_${i}:1 jammed ${"x".repeat(300)}`, startsAt: Date.UTC(2026, 11, 2, 1, 2, 3), endsAt: null, value: 3, threshold: 1,
});

describe("the markdown message", () => {
	it("names severity and what in the title, says where, starts in Asia/Shanghai, mentions phones on P1 only", () => {
		const m = renderMessage([alertOf(1, "P1")], { now: Date.UTC(2026, 11, 2, 1, 12, 3), keyword: "告警", atMobiles: ["13900000000"], msgUuid: "ntf_1" });
		expect(m.msgtype).toBe("markdown");
		expect(m.msgUuid).toBe("ntf_1");
		expect(m.markdown.title).toBe("告警 [P1] DoorFault");
		expect(m.markdown.text).toContain("cabinetId=cab_1");
		expect(m.markdown.text).toContain("2026-12-02 09:02:03 (UTC+8)");
		expect(m.markdown.text).toContain("10 min 0 s");
		expect(m.markdown.text).toContain("@13900000000");
		expect(m.at.atMobiles).toEqual(["13900000000"]);
		const p2 = renderMessage([alertOf(1, "P2")], { now: Date.now(), atMobiles: ["13900000000"], msgUuid: "ntf_2" });
		expect(p2.at.atMobiles).toEqual([]);
		expect(p2.markdown.text).not.toContain("@139");
	});

	it("stays under DingTalk's 20 000 bytes with 500 alerts, worst first, saying how many were left out", () => {
		const alerts = Array.from({ length: 500 }, (_, i) => alertOf(i, i === 499 ? "P1" : "P3"));
		const m = renderMessage(alerts, { now: Date.now(), msgUuid: "ntf_big" });
		expect(Buffer.byteLength(m.markdown.text)).toBeLessThanOrEqual(MAX_MARKDOWN_BYTES);
		expect(m.markdown.text.indexOf("cab_499")).toBeLessThan(m.markdown.text.indexOf("cab_0"));
		const shown = (m.markdown.text.match(/^#### /gm) ?? []).length;
		expect(m.markdown.text).toContain(`…+${500 - shown} more / 另有 ${500 - shown} 条`);
	});
});

const rule: RuleSpec = { name: "CabinetOffline", severity: "P2", forMs: 1000, clearForMs: 500, groupBy: ["pointId"] };
const sig = (active: boolean): Signal => ({ rule: "CabinetOffline", labels: { cabinetId: "cab_1", pointId: "pnt_1" }, active, summary: "offline" });

describe("for and clear (hysteresis)", () => {
	it("fires after `for`, resolves only after `clearFor` without the condition, and a flap in between changes nothing", () => {
		let a = observe(null, sig(true), rule, 0)!;
		expect(a.state).toBe("pending");
		expect(a._id).toBe(fingerprint({ alertname: "CabinetOffline", pointId: "pnt_1", cabinetId: "cab_1" }));
		expect(advance(a, rule, 999).state).toBe("pending");
		a = advance(a, rule, 1000);
		expect(a.state).toBe("firing");
		a = observe(a, sig(false), rule, 2000)!;
		expect(advance(a, rule, 2400).state).toBe("firing");
		a = observe(a, sig(true), rule, 2400)!; // back before clearFor: still the same firing alert
		expect(advance(a, rule, 3000)).toMatchObject({ state: "firing", firingSince: 1000 });
		a = observe(a, sig(false), rule, 3000)!;
		expect(advance(a, rule, 3500)).toMatchObject({ state: "resolved", resolvedAt: 3500 });
	});

	it("records nothing for a condition that clears without having been raised", () => {
		expect(observe(null, sig(false), rule, 0)).toBeNull();
	});

	it("resolves an alert raised by one event after `resolveAfter` without a repeat", () => {
		const ev: RuleSpec = { ...rule, name: "DoorFault", forMs: 0, resolveAfterMs: 1000 };
		const a = observe(null, { ...sig(true), rule: "DoorFault" }, ev, 0)!;
		expect(a.state).toBe("firing");
		expect(advance(a, ev, 999).state).toBe("firing");
		expect(advance(a, ev, 1000).state).toBe("resolved");
	});
});

const firingAt = (id: string, t: number): AlertRecord => ({
	_id: id, name: "CabinetOffline", severity: "P2", labels: { alertname: "CabinetOffline", pointId: "pnt_1", cabinetId: id }, summary: "", state: "firing",
	activeSince: t, firingSince: t, inactiveSince: null, resolvedAt: null, updatedAt: t,
});
const timing = { groupWaitMs: 100, groupIntervalMs: 1000, repeatIntervalMs: 10_000 };
const fresh = (since: number): GroupState => ({ _id: "g", severity: "P2", lastSentAt: null, sent: {}, since, seq: 0, nonce: "n" });

describe("grouping", () => {
	it("waits group_wait, then group_interval for a change, then repeat_interval for the same alerts", () => {
		const a = firingAt("a", 0);
		expect(flush(fresh(0), [a], timing, 99)).toBeNull();
		const first = flush(fresh(0), [a], timing, 100)!;
		expect(first.alerts.map(x => x._id)).toEqual(["a"]);
		expect(first.group).toMatchObject({ lastSentAt: 100, sent: { a: "firing" }, seq: 1 });
		const b = firingAt("b", 200);
		expect(flush(first.group, [a, b], timing, 1099)).toBeNull();
		const second = flush(first.group, [a, b], timing, 1100)!;
		expect(second.alerts.map(x => x._id)).toEqual(["a", "b"]);
		expect(flush(second.group, [a, b], timing, 11_099)).toBeNull();
		expect(flush(second.group, [a, b], timing, 11_100)!.alerts).toHaveLength(2);
	});

	it("sends a resolved alert once, and only if it had been sent as firing (send_resolved)", () => {
		const a = firingAt("a", 0);
		const sent = flush(fresh(0), [a], timing, 100)!.group;
		const resolved = { ...a, state: "resolved" as const, resolvedAt: 500 };
		const r = flush(sent, [resolved], timing, 1100)!;
		expect(r.alerts).toEqual([resolved]);
		expect(flush(r.group, [resolved], timing, 50_000)).toBeNull();
		// Resolved within group_wait: never sent as firing, so nothing at all.
		expect(flush(fresh(0), [{ ...resolved, resolvedAt: 50 }], timing, 100)).toBeNull();
	});
});

describe("silences and inhibition", () => {
	const a = firingAt("cab_1", 0);
	it("match labels exactly or by an anchored regular expression, only between start and end", () => {
		expect(matches(a.labels, [{ label: "pointId", value: "pnt_1" }])).toBe(true);
		expect(matches(a.labels, [{ label: "pointId", value: "pnt_" }])).toBe(false);
		expect(matches(a.labels, [{ label: "cabinetId", value: "cab_[0-9]+", regex: true }])).toBe(true);
		expect(matches(a.labels, [{ label: "cabinetId", value: "cab", regex: true }])).toBe(false);
		expect(matches(a.labels, [{ label: "cabinetId", value: "(", regex: true }])).toBe(false);
		const s = { _id: "sil_1", matchers: [{ label: "pointId", value: "pnt_1" }], startsAt: 10, endsAt: 20, comment: "", createdBy: "u" };
		expect(silencedBy(a, [s], 9)).toBeUndefined();
		expect(silencedBy(a, [s], 10)).toBe(s);
		expect(silencedBy(a, [s], 20)).toBeUndefined();
	});

	it("mute a point's cabinet alerts while the point alert fires, and no other point's", () => {
		const point = { ...firingAt("p", 0), name: "PointOffline", labels: { alertname: "PointOffline", pointId: "pnt_1" } };
		const other = { ...firingAt("cab_9", 0), labels: { ...a.labels, pointId: "pnt_2", cabinetId: "cab_9" } };
		expect(inhibitedBy(a, [point, a, other], INHIBIT_RULES)).toBe(point);
		expect(inhibitedBy(other, [point, a, other], INHIBIT_RULES)).toBeUndefined();
		expect(inhibitedBy(a, [{ ...point, state: "resolved" }], INHIBIT_RULES)).toBeUndefined();
	});
});

describe("a robot's send plan", () => {
	const q = (i: number, severity: "P1" | "P2" | "P3", tried = false) => ({ _id: `n${i}`, severity, createdAt: i, nextAttemptAt: 0, tried });

	it("sends one request per notification while they fit the rate, P1 first", () => {
		const batches = plan([q(1, "P3"), q(2, "P1"), q(3, "P2")], 0, 10, 20);
		expect(batches.map(b => b.map(x => x._id))).toEqual([["n2"], ["n3"], ["n1"]]);
	});

	it("merges a pile-up into digests within the budget, P1 first, never merging one already tried", () => {
		const queue = [...Array.from({ length: 200 }, (_, i) => q(i, i % 10 === 0 ? "P1" : "P3")), q(500, "P3", true)];
		const batches = plan(queue, 17, 10, 20); // 3 requests left in this window
		expect(batches.map(b => b.length)).toEqual([MAX_PER_DIGEST, MAX_PER_DIGEST, MAX_PER_DIGEST]);
		const order = batches.flat();
		expect(order.slice(0, 20).every(n => n.severity === "P1")).toBe(true);
		expect(order.some(n => n._id === "n500")).toBe(false);
		// With room to spare, the tried one goes alone and the rest are merged around it.
		const roomy = plan(queue, 0, 10, 20);
		expect(roomy.filter(b => b.some(n => n._id === "n500"))).toEqual([[queue[200]]]);
		expect(roomy.flat()).toHaveLength(201);
		expect(plan(queue, 20, 10, 20)).toEqual([]);
	});

	it("backs off exponentially with jitter, capped", () => {
		expect(backoffMs(0, () => 0)).toBe(500);
		expect(backoffMs(0, () => 1)).toBe(1000);
		expect(backoffMs(3, () => 1)).toBe(8000);
		expect(backoffMs(40, () => 1)).toBe(300_000);
	});
});

describe("a rate window", () => {
	it("counts attempts and failures of the last window only, in constant memory", () => {
		const w = new RateWindow(60_000);
		for (let t = 0; t < 120_000; t += 10) w.add(t, t % 40 === 0); // 100 a second, a quarter failed
		const { attempts, failures } = w.counts(120_000);
		expect(attempts).toBeGreaterThanOrEqual(5900);
		expect(attempts).toBeLessThanOrEqual(6000);
		expect(failures / attempts).toBeCloseTo(0.25, 2);
		expect((w as any).buckets.size).toBeLessThanOrEqual(61);
		expect(w.counts(200_000)).toEqual({ attempts: 0, failures: 0 });
	});
});
