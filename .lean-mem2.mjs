for (const spec of process.argv.slice(2)) await import(spec);
for (let i = 0; i < 3; i++) { globalThis.gc(); await new Promise((r) => setTimeout(r, 50)); }
const m = process.memoryUsage();
console.log(`${(m.rss/1048576).toFixed(1)}\t${(m.heapUsed/1048576).toFixed(1)}\t${process.argv.slice(2).map(s=>s.replace(/.*\//,'')).join(' + ')}`);
