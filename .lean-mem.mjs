const spec = process.argv[2];
if (spec !== 'none') await import(spec);
for (let i = 0; i < 3; i++) { globalThis.gc(); await new Promise((r) => setTimeout(r, 50)); }
const m = process.memoryUsage();
console.log(`${spec.replace(/.*node_modules\//,'')}\t${(m.rss/1048576).toFixed(1)}\t${(m.heapUsed/1048576).toFixed(1)}`);
