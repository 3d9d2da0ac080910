// 网点地图: the page's wiring. Sign in, pick a city and a resolution, read the map, the points,
// the firing alerts and the offline cabinets, and keep the open cabinet's doors live.
import { api, currentUser, listAll, login, logout, onSession } from "./api.js";
import { connectEvents } from "./events.js";
import { CityMap, svgEl } from "./map.js";
import { CabinetView, STATE_WORDS, ago, el } from "./cabinet.js";

const $ = id => document.getElementById(id);
const POLL_CABINET_MS = 3000;
const POLL_FLEET_MS = 15_000;
const MAX_POINTS = 2000;

const state = {
	cities: [],
	city: null,
	res: 7,
	cells: [],
	points: [],
	pointsTotal: 0,
	alerts: [],
	offline: [],
	offlineSource: "",
	selectedPoint: null,
	live: "connecting",
};

const cityMap = new CityMap($("map"), { onPoint: id => selectPoint(id) });
const cabinet = new CabinetView($("cabinet"), { onChanged: () => scheduleFleetRefresh() });
let stopEvents = null;
let timers = [];

// ---- sign-in ---------------------------------------------------------------------------------

$("login-form").addEventListener("submit", async e => {
	e.preventDefault();
	const msg = $("login-error");
	msg.textContent = "";
	$("login-submit").disabled = true;
	try {
		await login($("login-name").value.trim(), $("login-password").value);
		$("login-password").value = "";
	} catch (err) {
		msg.textContent = err.status === 401 ? "Wrong user name or password." : err.message;
	} finally {
		$("login-submit").disabled = false;
	}
});
$("logout").addEventListener("click", () => logout());
onSession(s => (s ? start() : stop()));

function stop() {
	stopEvents?.();
	stopEvents = null;
	for (const t of timers) clearInterval(t);
	timers = [];
	cabinet.close();
	document.body.classList.remove("signed-in");
	$("login").hidden = false;
	$("app").hidden = true;
	$("login-name").focus();
}

let started = false;
async function start() {
	if (started) return;
	started = true;
	const user = currentUser();
	$("who").textContent = `${user.username ?? user.name ?? user.id} · ${user.roles.join(", ")}`;
	$("login").hidden = true;
	$("app").hidden = false;
	document.body.classList.add("signed-in");
	try {
		state.cities = await api("GET", "/cities");
	} catch (err) {
		showError(`Cities: ${err.message}`);
		state.cities = [];
	}
	const select = $("city");
	select.replaceChildren(...state.cities.map(c => el("option", { value: c.code }, `${c.name} ${c.code} · ${c.points}`)));
	const wanted = new URLSearchParams(location.hash.slice(1));
	const fromHash = state.cities.find(c => c.code === wanted.get("city"));
	state.city = (fromHash ?? [...state.cities].sort((a, b) => b.points - a.points)[0])?.code ?? null;
	const res = Number(wanted.get("res"));
	if (res >= 5 && res <= 9) state.res = res;
	select.value = state.city ?? "";
	$("res").value = String(state.res);
	stopEvents = connectEvents({ topics: "door,cabinet,alert", onEvent, onState: setLive });
	timers.push(setInterval(() => state.live !== "live" && cabinet.reload(), POLL_CABINET_MS));
	timers.push(setInterval(() => (state.live !== "live" ? refreshFleet() : undefined), POLL_FLEET_MS));
	await loadCity();
}
onSession(s => {
	if (!s) started = false;
});

$("city").addEventListener("change", () => {
	state.city = $("city").value;
	state.selectedPoint = null;
	showPoint(null);
	cabinet.close();
	loadCity();
});
$("res").addEventListener("change", () => {
	state.res = Number($("res").value);
	cityMap.keepView = true;
	loadMap();
});
$("reset-view").addEventListener("click", () => cityMap.resetView());
$("goto-cabinet").addEventListener("submit", e => {
	e.preventDefault();
	const id = $("goto-cabinet-id").value.trim();
	if (id) cabinet.open(id);
});

function remember() {
	history.replaceState(null, "", `#city=${encodeURIComponent(state.city ?? "")}&res=${state.res}`);
}

// ---- data ------------------------------------------------------------------------------------

async function loadCity() {
	if (!state.city) return draw();
	remember();
	const code = encodeURIComponent(state.city);
	const [points] = await Promise.all([
		listAll(`/cities/${code}/points`, MAX_POINTS).catch(err => (showError(`Points: ${err.message}`), { rows: [], total: 0 })),
		loadMapData(),
		loadTrouble(),
	]);
	state.points = points.rows;
	state.pointsTotal = points.total;
	draw();
}

async function loadMapData() {
	try {
		const m = await api("GET", `/cities/${encodeURIComponent(state.city)}/map?res=${state.res}`);
		state.cells = m.cells;
	} catch (err) {
		showError(`Map: ${err.message}`);
		state.cells = [];
	}
}

async function loadMap() {
	remember();
	await loadMapData();
	draw();
}

/** Firing alerts, and the city's offline cabinets (their own list when the gateway has it, else from CabinetOffline alerts). */
async function loadTrouble() {
	const [alerts, offline] = await Promise.all([
		api("GET", "/alerts?state=firing&pageSize=100").then(r => r.rows).catch(() => null),
		api("GET", `/cabinets?online=false&cityCode=${encodeURIComponent(state.city)}&pageSize=100`).catch(err => (err.status === 404 || err.status === 405 ? null : undefined)),
	]);
	state.alerts = alerts ?? [];
	state.alertsKnown = alerts !== null;
	if (offline) {
		state.offline = offline.rows.map(c => ({ id: c.id, pointId: c.pointId, pointName: c.pointName, lastSeenAt: c.lastSeenAt }));
		state.offlineTotal = offline.total;
		state.offlineSource = offline.partial ? "partial" : "";
	} else {
		// Without the cabinets list: what CabinetOffline alerts say (points of other cities drop out in draw()).
		state.offline = state.alerts.filter(a => a.name === "CabinetOffline" && a.labels?.cabinetId).map(a => ({ id: a.labels.cabinetId, pointId: a.labels.pointId, since: a.startsAt }));
		state.offlineTotal = state.offline.length;
		state.offlineSource = "alerts";
	}
}

async function refreshFleet() {
	if (!state.city) return;
	const code = encodeURIComponent(state.city);
	await Promise.all([
		loadMapData(),
		loadTrouble(),
		listAll(`/cities/${code}/points`, MAX_POINTS).then(p => ((state.points = p.rows), (state.pointsTotal = p.total))).catch(() => undefined),
	]);
	cityMap.keepView = true;
	draw();
	if (state.selectedPoint) showPoint(state.selectedPoint, { quiet: true });
}

let fleetTimer = null;
/** Door changes arrive by the dozen: redraw the city at most every 10 s for them (sooner for a cabinet or an alert). */
function scheduleFleetRefresh(ms = 10_000) {
	if (fleetTimer) return;
	fleetTimer = setTimeout(() => {
		fleetTimer = null;
		refreshFleet();
	}, ms);
}

// ---- live ------------------------------------------------------------------------------------

function setLive(s) {
	state.live = s;
	const badge = $("live");
	badge.className = `badge ${s === "live" ? "online" : "polling"}`;
	badge.textContent = s === "live" ? "● live" : s === "unavailable" ? "polling (no event stream)" : "polling (reconnecting)";
	badge.title = s === "live" ? "Door, cabinet and alert events arrive as they happen" : `Refreshing every ${POLL_CABINET_MS / 1000} s (cabinet) and ${POLL_FLEET_MS / 1000} s (map)`;
}

function onEvent(type, data) {
	if (type === "door") {
		if (data.cabinetId === cabinet.id) cabinet.updateDoor({ id: data.doorId, ...data });
		scheduleFleetRefresh();
	} else if (type === "cabinet") {
		if (data.cabinetId === cabinet.id) cabinet.setOnline(data.online, data.at);
		scheduleFleetRefresh(500);
	} else if (type === "alert") {
		scheduleFleetRefresh(500);
	}
}

// ---- drawing ---------------------------------------------------------------------------------

function troubleByPoint() {
	const flags = new Map();
	const flag = id => flags.get(id) ?? (flags.set(id, { offline: 0, alerts: 0 }), flags.get(id));
	for (const c of state.offline) if (c.pointId) flag(c.pointId).offline++;
	for (const a of state.alerts) if (a.labels?.pointId && !a.silencedBy && !a.inhibitedBy) flag(a.labels.pointId).alerts++;
	return flags;
}

function draw() {
	const flags = troubleByPoint();
	const inCity = new Set(state.points.map(p => p.id));
	const { scale } = cityMap.draw({ cells: state.cells, points: state.points, flags, selectedId: state.selectedPoint });
	drawLegend(scale);
	const free = state.cells.reduce((n, c) => n + c.availableDoors, 0);
	const empty = state.cells.filter(c => c.availableDoors === 0).length;
	const troubled = [...flags.keys()].filter(id => inCity.has(id)).length;
	$("summary").replaceChildren(
		stat(state.cells.length, `H3 cells (res ${state.res})`, "stat-cells"),
		stat(state.pointsTotal > state.points.length ? `${state.points.length}/${state.pointsTotal}` : state.points.length, "points", "stat-points"),
		stat(free, "free doors", "stat-free"),
		stat(empty, "cells with no free door", empty ? "stat-bad" : ""),
		stat(troubled, "points with trouble", troubled ? "stat-bad" : ""),
	);
	drawAlerts(inCity);
	drawOffline(inCity);
}

const stat = (value, label, cls = "") => el("div", { class: `stat ${cls}` }, el("b", {}, String(value)), el("span", {}, label));

function drawLegend(scale) {
	const items = scale.legend.map(([cls, text]) => el("span", { class: "legend-item" }, swatch(cls), text));
	$("legend").replaceChildren(
		el("span", { class: "legend-title" }, "Free doors per cell"), ...items,
		el("span", { class: "legend-sep" }),
		el("span", { class: "legend-item" }, dot("pt-ok"), "point ≥ 3 free"),
		el("span", { class: "legend-item" }, dot("pt-low"), "1–2"),
		el("span", { class: "legend-item" }, dot("pt-none"), "none"),
		el("span", { class: "legend-item" }, dot("pt-ok trouble"), "offline cabinet / alert"),
	);
}

function swatch(cls) {
	const s = svgEl("svg", { viewBox: "0 0 16 16", class: "swatch" });
	svgEl("polygon", { points: "8,1 14,4.5 14,11.5 8,15 2,11.5 2,4.5", class: `cell ${cls}` }, s);
	return s;
}

function dot(cls) {
	const s = svgEl("svg", { viewBox: "0 0 20 20", class: "swatch" });
	const g = svgEl("g", { class: `point ${cls}` }, s);
	if (cls.includes("trouble")) svgEl("circle", { cx: 10, cy: 10, r: 8.5, class: "halo" }, g);
	svgEl("circle", { cx: 10, cy: 10, r: 4.5, class: "dot" }, g);
	return s;
}

const pointName = id => state.points.find(p => p.id === id)?.name;

function drawAlerts(inCity) {
	const list = $("alerts");
	const rows = [...state.alerts].sort((a, b) => a.severity.localeCompare(b.severity) || (b.startsAt ?? "").localeCompare(a.startsAt ?? ""));
	$("alerts-count").textContent = state.alertsKnown === false ? "?" : String(rows.length);
	$("alerts-count").className = `count ${rows.length ? "bad" : ""}`;
	if (!rows.length) return list.replaceChildren(el("li", { class: "muted" }, state.alertsKnown === false ? "Alerts unavailable" : "No alert firing"));
	list.replaceChildren(...rows.slice(0, 50).map(a => {
		const here = a.labels?.pointId && inCity.has(a.labels.pointId);
		const go = () => (a.labels?.cabinetId ? cabinet.open(a.labels.cabinetId) : a.labels?.pointId && here ? selectPoint(a.labels.pointId) : undefined);
		return el("li", { class: `alert ${here ? "here" : ""} ${a.silencedBy || a.inhibitedBy ? "muted" : ""}`, "data-alert": a.name },
			el("span", { class: `sev sev-${a.severity}` }, a.severity),
			el("button", { type: "button", class: "link", onclick: go, disabled: !(a.labels?.cabinetId || here) },
				el("span", { class: "alert-name" }, a.name), " ",
				el("span", { class: "alert-summary" }, a.summary ?? ""),
				here ? el("span", { class: "muted" }, ` · ${pointName(a.labels.pointId)}`) : null),
			el("span", { class: "muted when" }, a.startsAt ? ago(a.startsAt) : ""));
	}));
}

function drawOffline(inCity) {
	// The server's list is the city's already; CabinetOffline alerts are every city's.
	const rows = state.offlineSource === "alerts" ? state.offline.filter(c => c.pointId && inCity.has(c.pointId)) : state.offline;
	$("offline-count").textContent = String(state.offlineSource === "alerts" ? rows.length : state.offlineTotal ?? rows.length);
	$("offline-count").className = `count ${rows.length ? "bad" : ""}`;
	$("offline-note").textContent = state.offlineSource === "alerts" ? "from CabinetOffline alerts" : state.offlineSource === "partial" ? "some doors nodes did not answer" : "";
	const list = $("offline");
	if (!rows.length) return list.replaceChildren(el("li", { class: "muted" }, "Every cabinet is online"));
	list.replaceChildren(...rows.slice(0, 50).map(c => el("li", {},
		el("button", { type: "button", class: "link", onclick: () => cabinet.open(c.id), "data-cabinet-id": c.id }, el("code", {}, c.id)),
		el("span", { class: "muted" }, ` ${c.pointName ?? pointName(c.pointId) ?? ""} · ${c.since ? `offline since ${ago(c.since)}` : `last seen ${ago(c.lastSeenAt)}`}`))));
}

// ---- a point and its cabinets ----------------------------------------------------------------

function selectPoint(id) {
	state.selectedPoint = id;
	cityMap.keepView = true;
	draw();
	showPoint(id);
}

async function showPoint(id, { quiet = false } = {}) {
	const box = $("point");
	if (!id) return void ((box.hidden = true), box.replaceChildren());
	box.hidden = false;
	if (!quiet) box.replaceChildren(el("p", { class: "muted" }, "Loading…"));
	try {
		const [p, cabs] = await Promise.all([
			api("GET", `/points/${encodeURIComponent(id)}`),
			listAll(`/points/${encodeURIComponent(id)}/cabinets`, 200).catch(err => ({ error: err })),
		]);
		if (state.selectedPoint !== id) return;
		const a = p.available ?? {};
		const offline = new Set(state.offline.map(c => c.id));
		let cabList;
		if (cabs.error) {
			cabList = el("p", { class: "muted" }, cabs.error.status === 404 ? "This gateway cannot list a point's cabinets yet: open one by its id below." : `Cabinets: ${cabs.error.message}`);
		} else {
			cabList = el("ul", { class: "cabinets" }, ...cabs.rows.map(c => {
				const counts = {};
				for (const d of c.doors) counts[d.state ?? "unknown"] = (counts[d.state ?? "unknown"] ?? 0) + 1;
				const isOff = c.online === false || offline.has(c.id);
				return el("li", { class: isOff ? "offline" : "" },
					el("button", { type: "button", class: "link", onclick: () => cabinet.open(c.id), "data-cabinet-id": c.id }, el("code", {}, c.id)),
					el("span", { class: `badge ${c.live === false ? "unknown" : isOff ? "offline" : "online"}` }, c.live === false ? "unknown" : isOff ? "offline" : "online"),
					el("span", { class: "muted" }, ` ${c.doors.length} doors · ${Object.entries(counts).map(([s, n]) => `${n} ${(STATE_WORDS[s] ?? s).split(" ").pop()}`).join(", ")}`));
			}));
		}
		box.replaceChildren(
			el("div", { class: "panel-head" },
				el("h2", {}, p.name),
				el("button", { type: "button", class: "link", onclick: () => selectPoint(null), "aria-label": "Close point" }, "×")),
			el("p", { class: "muted" }, p.address, p.status !== "active" ? ` · ${p.status}` : ""),
			el("div", { class: "sizes" }, ...["S", "M", "L"].map(s => el("div", { class: `size ${a[s] ? "" : "none"}` }, el("b", {}, String(a[s] ?? 0)), el("span", {}, `${s} free`)))),
			cabList,
		);
	} catch (err) {
		if (!quiet) box.replaceChildren(el("p", { class: "error" }, err.message));
	}
}

function showError(text) {
	const bar = $("errors");
	bar.hidden = false;
	bar.textContent = text;
	clearTimeout(showError.t);
	showError.t = setTimeout(() => (bar.hidden = true), 8000);
}

if (currentUser()) start();
else stop();
