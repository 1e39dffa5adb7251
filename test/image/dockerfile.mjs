// test/image/dockerfile.mjs - turns one target of deploy/Dockerfile into a shell script that builds
// that target's root filesystem without a Docker daemon (test/image/run.sh): the instructions of the
// target and of the stages it derives from, in order, applied to a directory ($ROOTFS) made by
// mmdebstrap from the first stage's Debian image.
//
//   node test/image/dockerfile.mjs deploy/Dockerfile TARGET
//
// Prints shell assignments and functions:
//   IMG_SUITE         the Debian suite of the base image (FROM debian:SUITE-slim)
//   img_prepare       COPY from the build context and RUN, as Docker would (RUN as root in a chroot)
//   img_install_build COPY --from=build: the built binaries (from $BUILD), applied on every run
//   IMG_USER, IMG_ENV (array of KEY=VALUE), IMG_ENTRYPOINT, IMG_CMD (arrays)
// Only the instructions this Dockerfile uses are understood; anything else is an error, so a new
// instruction in the Dockerfile cannot be skipped silently by its test.
import { readFileSync } from 'node:fs';

const [file, target] = process.argv.slice(2);
const text = readFileSync(file, 'utf8');
// Logical lines: comments dropped, backslash continuations joined.
const lines = [];
let cur = '';
for (const raw of text.split('\n')) {
  if (/^\s*#/.test(raw) && cur === '') continue;
  if (/^\s*#/.test(raw)) continue; // a comment inside a continued instruction
  if (raw.endsWith('\\')) { cur += raw.slice(0, -1) + ' '; continue; }
  cur += raw;
  if (cur.trim() !== '') lines.push(cur.trim());
  cur = '';
}
const stages = [];
for (const l of lines) {
  const m = /^(\w+)\s+(.*)$/s.exec(l);
  if (!m) throw new Error(`cannot read: ${l}`);
  const op = m[1].toUpperCase();
  if (op === 'FROM') {
    const f = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(m[2]);
    stages.push({ from: f[1], name: f[2], ins: [] });
  } else if (stages.length) {
    stages.at(-1).ins.push({ op, arg: m[2] });
  }
}
const chain = [];
for (let name = target; ;) {
  const st = stages.find((s) => s.name === name);
  if (!st) break;
  chain.unshift(st);
  name = st.from;
}
if (!chain.length) throw new Error(`no stage ${target} in ${file}`);
const img = /^debian:([a-z]+)-slim$/.exec(chain[0].from);
if (!img) throw new Error(`the first stage derives from ${chain[0].from}, not debian:SUITE-slim`);

const q = (s) => `'${s.replace(/'/g, `'\\''`)}'`;
const json = (s) => JSON.parse(s);
let user = '0:0';
const env = [];
let entrypoint = [];
let cmd = [];
const prepare = [];
const install = [];
for (const st of chain) {
  for (const { op, arg } of st.ins) {
    if (op === 'RUN') {
      if (user !== 'root' && user !== '0:0' && user !== '0')
        throw new Error(`RUN as ${user} is not supported by this test`);
      prepare.push(`  img_run ${q(arg)}`);
    } else if (op === 'COPY') {
      const parts = arg.split(/\s+/);
      let from = null;
      while (parts[0].startsWith('--')) {
        const o = parts.shift();
        if (o.startsWith('--from=')) from = o.slice(7);
        else throw new Error(`COPY option ${o} is not supported by this test`);
      }
      const dest = parts.pop();
      for (const src of parts) {
        if (from === 'build') {
          const m = /^\/src\/build\/([\w.-]+)$/.exec(src);
          if (!m) throw new Error(`COPY --from=build ${src}: only /src/build/FILE is supported`);
          install.push(`  img_copy "$BUILD/${m[1]}" ${q(dest)}`);
        } else if (from === null) {
          prepare.push(`  img_copy ${q(src)} ${q(dest)}`);
        } else throw new Error(`COPY --from=${from} is not supported by this test`);
      }
    } else if (op === 'ENV') {
      for (const m of arg.matchAll(/(\w+)=(\S+)/g)) {
        const i = env.findIndex((e) => e.startsWith(m[1] + '='));
        if (i >= 0) env.splice(i, 1);
        env.push(`${m[1]}=${m[2]}`);
      }
    } else if (op === 'USER') user = arg;
    else if (op === 'ENTRYPOINT') entrypoint = json(arg);
    else if (op === 'CMD') cmd = json(arg);
    else if (!['EXPOSE', 'HEALTHCHECK', 'STOPSIGNAL'].includes(op)) // metadata, no effect on the files
      throw new Error(`${op} is not supported by this test`);
  }
}
const out = [];
out.push(`IMG_SUITE=${q(img[1])}`);
out.push(`IMG_USER=${q(user)}`);
out.push(`IMG_ENV=(${env.map(q).join(' ')})`);
out.push(`IMG_ENTRYPOINT=(${entrypoint.map(q).join(' ')})`);
out.push(`IMG_CMD=(${cmd.map(q).join(' ')})`);
out.push(`img_prepare() {\n${prepare.join('\n') || '  :'}\n}`);
out.push(`img_install_build() {\n${install.join('\n') || '  :'}\n}`);
console.log(out.join('\n'));
