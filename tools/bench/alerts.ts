/**
 * `npm run bench -- alerts`: a burst of alerts into one DingTalk group robot
 * with DingTalk's real limit (20 messages a minute, then blocked 10 minutes),
 * played against the fake robot of the test suite:
 *
 * - the usual bridge, modelled: one request per alert group, no retry, no
 *   rate (what prometheus-webhook-dingtalk does behind Alertmanager; the Go
 *   binary cannot be fetched here, so its documented behaviour is replayed);
 * - the platform's alerts service (embedded, in-memory store), with all
 *   group waits at 0 so the channel alone is measured;
 * - the same with a quarter of the requests failing (5xx, -1, reset).
 *
 * Prints a table and writes bench-results/alerts.json.
 */
import crypto from "node:crypto";
import { loadConfig } from "../../config";
import { startNode } from "../../server";
import { signedUrl } from "../../services/alerts/dingtalk";
import { FakeDingTalk, type Fault } from "../../test/support/fake-dingtalk";
import { parseFlags, positiveInt } from "./cli";
import { printGoals, writeReport, type Goal } from "./report";
import { formatTable } from "./table";

export const usage = "npm run bench -- alerts [--alerts 200] [--p1-every 10] [--timeout-s 120]";

const SECRET = `SEC${crypto.randomBytes(24).toString("hex")}`;

interface Row {
	target: string;
	alerts: number;
	requests: number;
	messages: number;
	refused130101: number;
	delivered: number;
	lost: number;
	maxPerMinute: number;
	allP1Ms: number | null;
	allMs: number | null;
}

const cabinet = (i: number) => `cab_bench_${i}`;
const isP1 = (i: number, every: number) => i % every === 0;
const deliveredCount = (fake: FakeDingTalk, token: string, n: number) => Array.from({ length: n }, (_, i) => i).filter(i => fake.messagesOf(token).some(m => m.text.includes(`${cabinet(i)}:1`))).length;

function summarise(target: string, fake: FakeDingTalk, token: string, n: number, every: number, t0: number): Row {
	const firstShown = (i: number) => fake.messagesOf(token).find(m => m.text.includes(`${cabinet(i)}:1`))?.at;
	const times = Array.from({ length: n }, (_, i) => firstShown(i));
	const p1 = times.filter((_, i) => isP1(i, every));
	const delivered = times.filter(t => t !== undefined).length;
	return {
		target, alerts: n, requests: fake.requests.filter(r => r.token === token).length, messages: fake.messagesOf(token).length,
		refused130101: fake.requests.filter(r => r.token === token && r.errcode === 130101).length, delivered, lost: n - delivered,
		maxPerMinute: fake.maxRequestsPerWindow(token),
		allP1Ms: p1.every(t => t !== undefined) ? Math.max(...(p1 as number[])) - t0 : null,
		allMs: delivered === n ? Math.max(...(times as number[])) - t0 : null,
	};
}

/** One request per alert, at once, nothing retried. */
async function naiveBridge(fake: FakeDingTalk, n: number, every: number): Promise<Row> {
	const token = "t-naive";
	fake.addRobot({ token, secret: SECRET });
	const t0 = Date.now();
	await Promise.all(Array.from({ length: n }, async (_, i) => {
		const text = `#### [${isP1(i, every) ? "P1" : "P3"}] DoorFault\n- cabinetId=${cabinet(i)}, doorId=${cabinet(i)}:1`;
		await fetch(signedUrl(fake.url(token), SECRET, Date.now()), {
			method: "POST", headers: { "content-type": "application/json" },
			body: JSON.stringify({ msgtype: "markdown", markdown: { title: "DoorFault", text } }),
		}).then(r => r.text(), () => undefined);
	}));
	return summarise("bridge, one request per alert, no retry (modelled)", fake, token, n, every, t0);
}

async function platform(fake: FakeDingTalk, n: number, every: number, timeoutMs: number, faults: boolean): Promise<Row> {
	const token = faults ? "t-platform-faults" : "t-platform";
	fake.addRobot({ token, secret: SECRET });
	if (faults) {
		const kinds: Fault[] = ["5xx", "busy", "reset"];
		// Every 4th request fails, the first one too (a burst meets a hiccup at once).
		fake.inject(token, ...Array.from({ length: 400 }, (_, i): Fault => (i % 4 === 0 ? kinds[(i / 4) % 3] : "ok")));
	}
	const node = await startNode(
		loadConfig({
			NODE_ENV: "test", PORT: "0", MQTT_PORT: "0", METRICS_PORT: "0", LOG_LEVEL: "error", DEMO_SEED: "false", ADMIN_PASSWORD: "bench-admin-pass-1",
			ALERTS_TIMING: JSON.stringify({ P1: { groupWaitMs: 0 }, P2: { groupWaitMs: 0 }, P3: { groupWaitMs: 0 } }),
			DINGTALK_ROBOTS: JSON.stringify([{ name: "bench", url: fake.url(token), secret: SECRET }]),
		}),
		{ dataDir: null },
	);
	try {
		const t0 = Date.now();
		await Promise.all(Array.from({ length: n }, (_, i) =>
			node.broker.call("alerts.signal", { rule: isP1(i, every) ? "DoorForcedOpen" : "DoorLeftOpen", labels: { cabinetId: cabinet(i), doorId: `${cabinet(i)}:1` }, active: true, summary: `bench ${i}` }),
		));
		let lastShown = -1;
		for (let shown = 0; (shown = deliveredCount(fake, token, n)) < n && Date.now() - t0 < timeoutMs; ) {
			if (shown !== lastShown) process.stdout.write(`\r  ${faults ? "with faults" : "platform"}: ${shown}/${n} alerts shown, ${fake.requests.filter(r => r.token === token).length} requests, ${Math.round((Date.now() - t0) / 1000)} s   `);
			lastShown = shown;
			await fake.until("a request", () => fake.requests.length > 0 && fake.requests[fake.requests.length - 1].at > Date.now() - 50, 1000).catch(() => undefined);
		}
		process.stdout.write("\n");
		return summarise(faults ? "platform alerts, 1 in 4 requests failing (5xx, -1, reset)" : "platform alerts service", fake, token, n, every, t0);
	} finally {
		await node.stop();
	}
}

export async function main(argv: string[]): Promise<number> {
	const flags = parseFlags(argv, { alerts: { type: "string" }, "p1-every": { type: "string" }, "timeout-s": { type: "string" } });
	const n = positiveInt("alerts", flags.alerts, 200);
	const every = positiveInt("p1-every", flags["p1-every"], 10);
	const timeoutMs = positiveInt("timeout-s", flags["timeout-s"], 120) * 1000;
	console.log(`A burst of ${n} alerts (every ${every}th a P1) into one DingTalk robot: 20 messages a minute, then blocked 10 minutes.\n`);
	const fake = await new FakeDingTalk().start();
	const rows: Row[] = [];
	try {
		rows.push(await naiveBridge(fake, n, every));
		rows.push(await platform(fake, n, every, timeoutMs, false));
		rows.push(await platform(fake, n, every, timeoutMs, true));
	} finally {
		await fake.stop();
	}
	const ms = (v: number | null) => (v === null ? "never" : `${(v / 1000).toFixed(1)} s`);
	console.log(`\n${formatTable(
		[{ title: "target" }, { title: "requests", align: "right" }, { title: "messages", align: "right" }, { title: "130101", align: "right" }, { title: "delivered", align: "right" }, { title: "lost", align: "right" }, { title: "max/min", align: "right" }, { title: "all P1", align: "right" }, { title: "all", align: "right" }],
		rows.map(r => [r.target, String(r.requests), String(r.messages), String(r.refused130101), `${r.delivered}/${r.alerts}`, String(r.lost), String(r.maxPerMinute), ms(r.allP1Ms), ms(r.allMs)]),
	)}`);
	const [, ours, withFaults] = rows;
	const goals: Goal[] = [
		{ goal: `every one of ${n} alerts delivered`, pass: ours.lost === 0 && withFaults.lost === 0, value: `${ours.delivered}/${n}, with faults ${withFaults.delivered}/${n}` },
		{ goal: "never more than 20 requests a minute", pass: ours.maxPerMinute <= 20 && withFaults.maxPerMinute <= 20, value: `${ours.maxPerMinute}, with faults ${withFaults.maxPerMinute}` },
		{ goal: "never throttled (130101)", pass: ours.refused130101 === 0 && withFaults.refused130101 === 0, value: `${ours.refused130101}, with faults ${withFaults.refused130101}` },
		{ goal: "P1 delivered first", pass: ours.allP1Ms !== null && ours.allP1Ms <= (ours.allMs ?? Infinity), value: `all P1 in ${ms(ours.allP1Ms)}, all in ${ms(ours.allMs)}` },
	];
	printGoals("Goals", goals);
	return writeReport("alerts", { parameters: { alerts: n, p1Every: every, limit: "20 per minute" }, results: rows, goals, failures: [] });
}
