/**
 * Failpoints for crash tests: with CRASH_POINTS=name[,name…] (never allowed in
 * production) the process kills itself with SIGKILL when it reaches a named
 * point — between two writes that must not lose or double anything — as a
 * power cut or an OOM kill would. Tests restart it on the same data and check
 * that nothing was lost or counted twice.
 */
export function crashPoint(points: readonly string[], name: string): void {
	if (points.length && points.includes(name)) process.kill(process.pid, "SIGKILL");
}
