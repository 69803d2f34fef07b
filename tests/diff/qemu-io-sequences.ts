/**
 * qemu-io differential sequences (see qemu-io.test.ts): command-line options, every command
 * and its argument errors, I/O errors, open errors, stream order under `2>&1`, qcow2 images
 * and each qemu-io step of iotest 244.
 */
import { hostFs } from '../../src/storage/hostfs.ts';
import type { Sequence, Step } from './harness.ts';

const io = (...args: string[]): Step => ({ io: args });
const ioIn = (stdin: string, ...args: string[]): Step => ({ io: args, stdin });
const img = (...args: string[]): Step => ({ setupImg: args });
const raw = (name = 'r.img', size = '1M'): Step => img('create', '-q', '-f', 'raw', name, size);
const qcow = (name = 't.qcow2', size = '4M', ...opts: string[]): Step => img('create', '-q', '-f', 'qcow2', ...opts, name, size);
const cmds = (...c: string[]): string[] => c.flatMap((x) => ['-c', x]);

export const sequences: Sequence[] = [
  // ---- command line
  { name: 'help, version, usage errors', steps: [io('-h'), io('--help'), io('-V'), io('--version'), io('-x'), io('--bogus'), io('--cache'), io('-c'), io('a', 'b'), io('--help=x'), io('--c', 'x')] },
  { name: 'invalid cache, aio and discard modes', steps: [raw(), io('-t', 'bogus', 'r.img'), io('-i', 'bogus', 'r.img'), io('-d', 'bogus', 'r.img'), io('--cache=bogus', 'r.img'), io('-i', 'native', '-f', 'raw', 'r.img'), io('-k', '-f', 'raw', '-c', 'length', 'r.img'), io('-k', '-n', '-f', 'raw', '-c', 'length', 'r.img')] },
  { name: 'valid cache modes and abbreviated long options', steps: [raw(), ...['none', 'off', 'writeback', 'writethrough', 'directsync', 'unsafe'].map((m) => io('-t', m, '-f', 'raw', '-c', 'write 0 512', '-c', 'flush', 'r.img')), io('--cach=none', '--form=raw', '-c', 'length', 'r.img'), io('-n', '-f', 'raw', '-c', 'read 0 1', 'r.img'), io('--discard=unmap', '--aio=threads', '-f', 'raw', '-c', 'discard 0 512', 'r.img')] },
  { name: 'no file, no commands, stdin commands', steps: [raw(), io(), ioIn('', '-f', 'raw', 'r.img'), ioIn('length\nread 0 512\nbogus\n', '-f', 'raw', 'r.img'), ioIn('length\nquit\nlength\n', '-f', 'raw', 'r.img'), ioIn('open -o driver=raw r.img\nlength\n')] },
  { name: '--object definitions are checked at once', steps: [raw(), io('--object', 'foo', '-c', 'length', '-f', 'raw', 'r.img'), io('--object', 'secret,id=s', '-c', 'length', '-f', 'raw', 'r.img'), io('--object', 'secret,id=s,data=x', '--object', 'secret,id=s,data=y', '-f', 'raw', 'r.img'), io('--object', 'secret,id=s,data=x,bogus=1', '-f', 'raw', 'r.img'), io('--object', 'secret,data=x', '-f', 'raw', 'r.img'), io('--object', 'secret,id=s,data=x', '-c', 'length', '-f', 'raw', 'r.img')] },
  { name: 'open errors at the file argument', steps: [raw(), io('nonexist'), io('-f', 'raw', 'nonexist', '-c', 'read 0 1'), io('-f', 'nope', 'r.img'), io('foo:bar'), io('-f', 'raw', '.'), io('-f', 'raw', '-c', 'length', 'file:r.img')] },
  { name: '--image-opts', steps: [raw(), io('--image-opts', 'driver=raw,file.filename=r.img', '-c', 'length'), io('--image-opts', 'r.img', '-c', 'length'), io('--image-opts', '-f', 'raw', 'driver=raw,file.filename=r.img'), io('--image-opts', 'filename=r.img'), io('--image-opts', 'driver=file,filename=r.img', '-c', 'info'), io('--image-opts', 'driver=raw,file.filename=nonexist'), io('--image-opts', '-c', 'open driver=raw,file.filename=r.img', '-c', 'length'), io('--image-opts', '-c', 'open -o driver=raw r.img')] },
  { name: 'read-only image rejects writes', steps: [raw(), io('-r', '-f', 'raw', '-c', 'write 0 1', '-c', 'read 0 1', 'r.img'), io('-r', '-f', 'raw', '-c', 'discard 0 512', '-c', 'truncate 1M', '-c', 'writev 0 1', '-c', 'aio_write 0 1', 'r.img'), io('-c', 'open -r -o driver=raw r.img', '-c', 'write 0 1', '-c', 'flush')] },
  { name: 'probing guesses raw with a warning, block 0 guard', steps: [raw(), io('-c', 'write 0 512', 'r.img'), io('-c', 'write -P 0x51 0 1', '-c', 'read -v 0 4', 'r.img'), io('-r', '-c', 'read 0 1', 'r.img'), io('-c', 'open r.img', '-c', 'length')] },

  // ---- commands on raw images
  { name: 'unknown commands, empty commands, no file open', steps: [raw(), io('-c', 'bogus', '-c', '', '-c', '   ', '-f', 'raw', 'r.img'), io(...cmds('read 0 1', 'write 0 1', 'close', 'flush', 'length', 'info', 'map')), io('-f', 'raw', 'r.img', ...cmds('close', 'close', 'length'))] },
  { name: 'argument count errors', steps: [raw(), io('-f', 'raw', 'r.img', ...cmds('read', 'read 0', 'write', 'o', 'open', 'flush x', 'aio_flush 1', 'length 1', 'info x', 'map 1', 'truncate', 'truncate 1 2 3 4', 'alloc', 'alloc 1 2 3', 'sleep', 'help a b', 'discard 0', 'readv 0', 'writev 0', 'aio_read 0', 'aio_write 0', 'break a', 'resume', 'sigraise'))] },
  { name: 'help for every command', steps: [io('-c', 'help'), io(...cmds('help abort', 'help aio_flush', 'help aio_read', 'help aio_write', 'help alloc', 'help break', 'help close', 'help discard', 'help flush', 'help help', 'help info', 'help length', 'help map')), io(...cmds('help open', 'help quit', 'help read', 'help readv', 'help remove_break', 'help reopen', 'help resume', 'help sigraise', 'help sleep', 'help truncate', 'help wait_break', 'help write', 'help writev')), io(...cmds('help r', 'help ?', 'help w', 'help bogus', '? read'))] },
  { name: 'read and write with patterns, dump, quiet, machine format', steps: [raw(), io('-f', 'raw', 'r.img', ...cmds('write -P 0x41 0 40', 'read -v 0 40', 'read -P 0x41 0 40', 'read -P 65 0 40', 'read -q 0 40', 'read -C 0 512', 'write -C -P 1 512 512', 'read -P 1 -C 512 512', 'write -q 0 1'))] },
  { name: 'pattern verification failures and ranges', steps: [raw(), io('-f', 'raw', 'r.img', ...cmds('write -P 7 0 4k', 'read -P 8 0 4k', 'read -P 7 -s 512 -l 512 0 4k', 'read -P 0 -s 4k 0 8k', 'read -P 7 -s 10 -l 8 0 16', 'read -P 7 -s 10 -l 10 0 16', 'read -s 1 0 4', 'read -l 1 0 4', 'read -P 7 -l 5k 0 4k'))] },
  { name: 'invalid pattern bytes', steps: [raw(), io('-f', 'raw', 'r.img', ...cmds('read -P 300 0 1', 'read -P 0x1g 0 1', 'read -P -1 0 1', 'write -P x 0 1', 'write -P 256 0 1', 'writev -P 999 0 1', 'readv -P q 0 1', 'aio_read -P z 0 1', 'aio_write -P 1000 0 1', 'write -P 0xff 0 1', 'read -P 0377 0 1'))] },
  { name: 'number parsing errors and suffixes', steps: [raw('r.img', '8M'), io('-f', 'raw', 'r.img', ...cmds('read x 1', 'read 0 1x', 'read -1 1', 'read 1.5 1', 'read 0 9E', 'read 0 8E', 'read 0.5k 1k', 'read 1.5k 512', 'write 0x10 16', 'read 0x10k 1', 'read 1M 1M', 'read 0 3G', 'write 0 3G', 'discard 0 3G', 'alloc 1e 1', 'alloc 1.5M'))] },
  { name: 'beyond EOF requests fail with EIO', steps: [raw(), io('-f', 'raw', 'r.img', ...cmds('read 0 2M', 'read 1M 1', 'read 1M 0', 'read 2M 0', 'write 1M 1', 'write -z 0 2M', 'discard 512k 1M', 'readv 1M 512 1', 'writev 1M 1', 'aio_read 1M 1', 'aio_write 1M 1', 'write -c 1M 512'))] },
  { name: 'write option conflicts', steps: [raw(), io('-f', 'raw', 'r.img', ...cmds('write -z -P 1 0 1', 'write -z -s f 0 1', 'write -u 0 1', 'write -n 0 1', 'write -c -f 0 512', 'write -b -z 0 512', 'write -b -f 0 512', 'write -c 1 512', 'write -c 0 511', 'write -b 1 512', 'read -b 0 511', 'write -x 0 1', 'write 0 1 2'))] },
  { name: 'write zeroes, unmap, fua, compressed and vmstate on raw', steps: [raw(), io('-f', 'raw', 'r.img', ...cmds('write -P 9 0 64k', 'write -z 0 4k', 'write -z -u 4k 4k', 'write -z -n 8k 4k', 'write -f 12k 4k', 'read -P 0 0 12k', 'read -P 9 16k 48k', 'write -c 0 512', 'write -b 0 512', 'read -b 0 512'))] },
  { name: 'write -s source files', steps: [raw(), { file: 'src.bin', size: 3, fill: 0x61 }, { file: 'empty.bin', size: 0 }, io('-f', 'raw', 'r.img', ...cmds('write -s src.bin 0 10', 'read -v 0 16', 'write -s nofile 0 1', 'write -s empty.bin 0 1', 'write -s src.bin -P 1 0 1'))] },
  { name: 'readv and writev', steps: [raw(), io('-f', 'raw', 'r.img', ...cmds('writev 0 1 2 3', 'writev -P 7 1k 512 512', 'readv -P 7 1k 512 512', 'readv -v 1k 3 3', 'readv -P 8 1k 1k', 'readv -q 0 1', 'writev -q -f 0 1', 'readv -C 0 512', 'writev 0 3G', 'writev 0 2G 2G', 'readv -x 0 1', 'writev 0 x'))] },
  { name: 'aio_read, aio_write, aio_flush', steps: [raw(), io('-f', 'raw', 'r.img', ...cmds('aio_write -P 5 0 512', 'aio_flush', 'aio_read -P 5 0 512', 'aio_flush', 'aio_read -P 6 0 512', 'aio_flush', 'aio_read -v 0 8', 'aio_flush', 'aio_read -i 0 1', 'aio_write -i 0 1', 'aio_write -z 0 512 512', 'aio_write -u 0 512', 'aio_write -q 0 1', 'aio_flush', 'aio_read -q -C 0 1', 'aio_flush', 'aio_write -f 512 512 512', 'aio_flush', 'aio_read -x 0 1', 'aio_write -z 0 512', 'aio_flush', 'aio_write -C 0 1', 'aio_flush'))] },
  { name: 'aio completions are reported when the main loop runs', steps: [raw(), io('-f', 'raw', 'r.img', ...cmds('aio_read 1M 1', 'aio_write 1M 1', 'read 0 1')), io('-f', 'raw', 'r.img', ...cmds('aio_read 1M 1', 'aio_write 1M 1', 'read 1M 1', 'length')), io('-f', 'raw', 'r.img', ...cmds('aio_read 1M 1', 'aio_write 1M 1', 'aio_flush', 'length')), io('-f', 'raw', 'r.img', ...cmds('aio_read 0 1', 'length', 'sleep 200', 'length')), io('-f', 'raw', 'r.img', ...cmds('aio_read 1M 1', 'info', 'map', 'alloc 0')), io('-f', 'raw', 'r.img', ...cmds('aio_read 1M 1', 'discard 0 512')), io('-f', 'raw', 'r.img', ...cmds('aio_read 0 1', 'length'))] },
  { name: 'discard', steps: [raw(), io('-f', 'raw', 'r.img', ...cmds('write -P 3 0 64k', 'discard 0 4k', 'discard -q 4k 4k', 'discard -C 8k 4k', 'read -P 0 0 12k', 'discard 0', 'discard 0 1 2', 'discard -x 0 1', 'discard 0 4M')), io('-d', 'ignore', '-f', 'raw', '-c', 'discard 0 64k', 'r.img')] },
  { name: 'flush, length, info, map, alloc on raw', steps: [raw(), io('-f', 'raw', 'r.img', ...cmds('flush', 'f', 'length', 'l', 'info', 'i', 'map', 'alloc 0', 'alloc 0 2M', 'alloc 1M', 'alloc 512 1k', 'alloc x', 'alloc 0 x', 'a 4k'))] },
  { name: 'truncate', steps: [raw(), io('-f', 'raw', 'r.img', ...cmds('truncate 2M', 'length', 'truncate -m falloc 3M', 'length', 'truncate -m full 4M', 'length', 'truncate -m metadata 5M', 'truncate -m bogus 3M', 'truncate x', 'truncate -x 1', 'truncate 1M', 'length', 'truncate -m falloc 512k', 't 1M'))] },
  { name: 'sleep and quit', steps: [raw(), io('-f', 'raw', 'r.img', ...cmds('sleep 10', 'sleep x', 'sleep -1', 'sleep 0x5', 'quit', 'read 0 1')), io(...cmds('q', 'bogus'))] },
  { name: 'reopen', steps: [raw(), io('-f', 'raw', 'r.img', ...cmds('reopen -r', 'write 0 1', 'reopen -w', 'write 0 1', 'reopen -c none', 'reopen -c bogus', 'reopen -o foo=bar', 'reopen -r -w', 'reopen x', 'reopen -o read-only=on -r', 'reopen -o read-only=on', 'write 0 1'))] },
  { name: 'breakpoints without blkdebug, sigraise errors', steps: [raw(), io('-f', 'raw', 'r.img', ...cmds('break read_aio a', 'remove_break a', 'resume a', 'remove_break b', 'sigraise 100', 'sigraise x'))] },
  { name: 'open command options and errors', steps: [raw(), io(...cmds('open -o driver=raw r.img', 'open -o driver=raw r.img', 'length')), io(...cmds('open -f raw r.img', 'open -t bogus r.img', 'open -d bogus r.img', 'open -i bogus r.img', 'open -o id=x r.img', 'open -x r.img', 'open a b')), io(...cmds('open -o driver=raw,file.filename=r.img r.img', 'open -o driver=raw,,x r.img', 'open -o foo -r -o driver=raw r.img')), io(...cmds('open -r -C r.img', 'open -n -k -o driver=raw r.img', 'open -U r.img', 'open -r -U -o driver=raw r.img', 'length'))] },
  { name: 'open -o option syntax, merge and unknown options', steps: [raw(), io(...cmds('open -o driver=raw -o file.filename=r.img', 'length', 'close', 'open -o driver=raw,foo=1 r.img', 'open -o driver=raw,file.bar=1 r.img', 'open -o driver=raw,read-only=bogus r.img', 'open -o driver=raw,cache.direct=x r.img', 'open -o driver=raw,discard=x r.img', 'open -o driver=raw,detect-zeroes=x r.img', 'open -o driver=raw,node-name=1a r.img'))] },

  // ---- json: filenames, other drivers
  { name: 'json: filenames and their parse errors', steps: [raw(), ...["json:{", 'json:[1]', "json:{'driver':}", "json:{'a' 1}", "json:xx", 'json:', "json:{'driver':'raw'} x", "json:{'a':1,'a':2}", "json:{'a", "json:{'a':'\\x'}", "json:{'a':@}", "json:{'a':0x10}", "json:{1:2}", "json:{'a':True}", "json:{'driver':'nope'}", "json:{'driver':'raw','file':'x'}"].map((j) => io('-c', 'length', j)), io('-c', 'length', '-c', 'info', "json:{'driver':'raw','file':{'driver':'file','filename':'r.img'}}"), io('-c', 'length', "json:{'driver':'raw','file':{'driver':'file','filename':'r.img'},'foo':1}"), io('-c', 'length', "json:{\"driver\": \"raw\", \"offset\": 512, \"size\": 4096, \"file\": {\"driver\": \"file\", \"filename\": \"r.img\"}}")] },
  { name: 'raw offset and size options', steps: [raw(), io('-f', 'raw', '-c', 'write -P 1 0 1M', 'r.img'), io('--image-opts', 'driver=raw,offset=4k,size=8k,file.filename=r.img', ...cmds('length', 'read -P 1 0 8k', 'read 0 9k', 'write 8k 1', 'map')), io('--image-opts', 'driver=raw,size=1000,file.filename=r.img'), io('--image-opts', 'driver=raw,offset=2M,file.filename=r.img'), io('--image-opts', 'driver=raw,offset=1M,size=512,file.filename=r.img'), io('--image-opts', 'driver=raw,offset=x,file.filename=r.img')] },
  { name: 'null-co', steps: [io('--image-opts', 'driver=null-co', ...cmds('length', 'info', 'map', 'read -v 0 16', 'alloc 0', 'write 0 512', 'flush')), io('--image-opts', 'driver=null-co,size=1M,read-zeroes=on', ...cmds('length', 'map', 'read -v 0 16', 'alloc 0')), io('-r', '-c', 'length', 'null-co://'), io('--image-opts', 'driver=null-co,filename=x'), io('--image-opts', 'driver=null-co,size=1k', '-c', 'truncate 2k')] },
  { name: 'blkdebug rules', steps: [raw(), io('--image-opts', 'driver=blkdebug,image.filename=r.img,inject-error.0.event=none,inject-error.0.iotype=read,inject-error.0.errno=28', ...cmds('read 0 512', 'write 0 512', 'info', 'map')), io('--image-opts', 'driver=blkdebug,image.filename=r.img,inject-error.0.event=none,inject-error.0.sector=1', ...cmds('read 0 512', 'read 512 512', 'write 0 512', 'write 0 1k')), io('--image-opts', 'driver=blkdebug,image.filename=r.img,inject-error.0.event=none,inject-error.0.once=on', ...cmds('read 0 512', 'read 0 512')), io('--image-opts', 'driver=raw,file.driver=blkdebug,file.image.filename=r.img,file.inject-error.0.event=read_aio,file.inject-error.0.once=on', ...cmds('read 0 512', 'read 0 512', 'write 0 512'))] },
  { name: 'blkdebug flush and write-zeroes errors', steps: [raw(), io('--image-opts', 'driver=blkdebug,image.filename=r.img,inject-error.0.event=none,inject-error.0.iotype=flush', ...cmds('write 0 512', 'write -z 0 512', 'flush', 'discard 0 512')), io('-t', 'writeback', '--image-opts', 'driver=blkdebug,image.filename=r.img,inject-error.0.event=none,inject-error.0.iotype=flush', ...cmds('flush', 'write 0 512', 'flush')), io('--image-opts', 'driver=blkdebug,image.filename=r.img,inject-error.0.event=none,inject-error.0.iotype=write-zeroes', ...cmds('write -z 0 512', 'write 0 512')), io('--image-opts', 'driver=blkdebug,image.filename=r.img,inject-error.0.event=none,inject-error.0.iotype=discard', ...cmds('discard 0 512'))] },
  { name: 'blkdebug option errors and filenames', steps: [raw(), io('--image-opts', 'driver=blkdebug,image.filename=r.img,inject-error.0.event=bogus'), io('--image-opts', 'driver=blkdebug,image.filename=r.img,inject-error.0.event=none,inject-error.0.iotype=bogus'), io('--image-opts', 'driver=blkdebug,image.filename=r.img,inject-error.0.iotype=read'), io('--image-opts', 'driver=blkdebug,image.filename=r.img,align=3'), io('--image-opts', 'driver=blkdebug,image.filename=r.img,foo=1'), io('--image-opts', 'driver=blkdebug'), io('-c', 'read 0 1', 'blkdebug::r.img'), io('-c', 'read 0 1', 'blkdebug:r.img'), io('-c', 'read 0 1', 'blkdebug:nocfg:r.img'), io('--image-opts', 'driver=raw,file.driver=blkdebug,file.image.filename=r.img', ...cmds('break read_aio a', 'remove_break a', 'resume a', 'remove_break b', 'break bogus a'))] },

  { name: 'blkdebug breakpoints suspend aio requests until resume', steps: [qcow('b.qcow2', '4M'), io('blkdebug::b.qcow2', ...cmds('break write_aio A', 'aio_write -P 1 0 4k', 'wait_break A', 'aio_write -P 2 8k 4k', 'resume A', 'aio_flush', 'read -P 1 0 4k', 'read -P 2 8k 4k', 'remove_break A', 'break write_aio B', 'remove_break B', 'resume B')), qcow('c.qcow2', '1M', '-o', 'extended_l2=on'), ioIn('open -o driver=qcow2 blkdebug::c.qcow2\nbreak write_aio A\naio_write -P 10 30k 2k\nwait_break A\naio_write -P 11 20k 2k\nresume A\naio_flush\n'), io('-c', 'read -P 10 30k 2k', '-c', 'read -P 11 20k 2k', 'c.qcow2')] },
  { name: 'compress filter', compareFiles: true, steps: [qcow('c.qcow2', '1M'), raw('c.raw', '1M'), io('--image-opts', 'driver=compress,file.driver=raw,file.file.filename=c.raw', '-c', 'write 0 1k'), io('--image-opts', 'driver=compress,file.driver=qcow2,file.file.filename=c.qcow2', ...cmds('write -P 1 1k 1k', 'read -P 1 1k 1k', 'read -P 0 0 1k', 'write -z 64k 64k', 'map', 'info', 'write 0 1k')), io('-c', 'open -o driver=compress json:{"file":{"driver":"qcow2","file":{"driver":"file","filename":"c.qcow2"}}}', '-c', 'length', '-c', 'read -P 1 1k 1k'), { img: ['check', 'c.qcow2'] }] },
  { name: 'raw files: holes and data as qemu-img map sees the file node', separateOnly: true, steps: [raw('h.raw', '1M'), { img: ['map', '--output=json', 'h.raw'] }, { setupIo: ['-f', 'raw', '-c', 'write -P 1 256k 4k', '-c', 'write -P 2 600k 100k', '-c', 'write -z 512k 64k', 'h.raw'] }, { img: ['map', '--output=json', 'h.raw'] }, { img: ['map', 'h.raw'] }, { file: 'full.raw', size: 65536 }, { img: ['map', '--output=json', 'full.raw'] }, raw('odd.raw', '5000'), { img: ['map', '--output=json', 'odd.raw'] }, io('-f', 'raw', '-c', 'map', '-c', 'alloc 0 1M', 'h.raw')] },

  // ---- stream order under 2>&1
  // Where glibc flushes a full stdout buffer depends on every byte before it, so sequences that
  // cross 4 KiB keep timing-dependent statistics lines out of the way (-q).
  { name: 'stderr overtakes buffered stdout under 2>&1', steps: [raw(), io('-f', 'raw', 'r.img', ...cmds('read 0 512', 'bogus', 'read 0 512', 'write -z -P 1 0 1', 'flush x', 'bogus2'))] },
  { name: 'large output crosses the 4 KiB stdout buffer', steps: [raw(), io('-f', 'raw', 'r.img', ...cmds('read -q -v 0 1k', 'bogus', 'read -q -v 0 1k', 'nope', 'help', 'read -q -v 0 2k', 'sleep x', 'help read'))] },
  // ---- qcow2
  { name: 'qcow2 basic I/O, map, alloc, info, length', steps: [qcow(), io('-c', 'write -P 0x11 0 64k', '-c', 'write -z 128k 64k', '-c', 'write -P 3 1M 4k', 't.qcow2'), io('-c', 'read -P 0x11 0 64k', '-c', 'read -P 0 64k 1M', '-c', 'map', '-c', 'alloc 0 2M', '-c', 'alloc 64k', '-c', 'length', '-c', 'info', 't.qcow2'), io('-f', 'qcow2', '-c', 'discard 0 64k', '-c', 'map', '-c', 'read -P 0 0 64k', 't.qcow2')] },
  { name: 'qcow2 unaligned I/O and compressed writes', steps: [qcow(), io('-f', 'qcow2', 't.qcow2', ...cmds('write -P 1 1000 3000', 'read -P 1 1000 3000', 'read -P 0 0 1000', 'write -c -P 2 64k 64k', 'read -P 2 64k 64k', 'write -c 0 512', 'map'))] },
  { name: 'qcow2 beyond EOF, truncate, flush', steps: [qcow('t.qcow2', '1M'), io('-f', 'qcow2', 't.qcow2', ...cmds('read 1M 1', 'write 1M 1', 'truncate 2M', 'length', 'write -P 5 1M 512', 'read -P 5 1M 512', 'flush', 'truncate 1M', 'length'))] },
  { name: 'qcow2 VM state (read -b / write -b)', compareFiles: true, steps: [qcow('t.qcow2', '64M'), io('t.qcow2', ...cmds('write -b -P 0x11 1T 4k', 'read -b -P 0x11 1T 4k', 'read -b -P 0 0 4k', 'write -b 0 4M', 'read -b 1 512', 'map')), io('-r', '-c', 'write -b 0 512', 't.qcow2')] },
  { name: 'qcow2 backing chain', steps: [qcow('base.qcow2', '1M'), { setupIo: ['-c', 'write -P 7 0 1M', 'base.qcow2'] }, img('create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', 'top.qcow2'), io('top.qcow2', ...cmds('read -P 7 0 1M', 'map', 'alloc 0 1M', 'write -P 8 0 4k', 'map', 'read -P 8 0 4k', 'read -P 7 4k 4k')), io('--image-opts', 'driver=qcow2,file.filename=top.qcow2,backing=null', '-c', 'read -P 0 4k 4k', '-c', 'map'), img('create', '-q', '-f', 'qcow2', '-u', '-b', 'missing.qcow2', '-F', 'qcow2', 'orphan.qcow2', '1M'), io('-c', 'read 0 1', 'orphan.qcow2')] },
  // handle_alloc_space: a new cluster whose COW regions read as zeroes is zeroed with fallocate
  // (unwritten extents, holes to SEEK_DATA); COW from a backing file or of subclusters still
  // copies. The host layout (map -f raw of the image file) and disk size must be QEMU's.
  // Needs the native host-file helper (fallocate, SEEK_DATA); without it qtest guesses.
  ...(hostFs
    ? [
      {
        name: 'qcow2 new clusters zeroed without writing: host layout and disk size as QEMU',
        separateOnly: true,
        compareFiles: true,
        steps: [
          qcow('t.qcow2', '1M'),
          io('t.qcow2', ...cmds('write -P 1 0 4k', 'write -P 2 128k 4k', 'write -P 3 200k 8k', 'write -P 4 320k 4k', 'write -P 5 400k 130k', 'write -z 0 64k', 'discard 128k 64k', 'map')),
          { img: ['map', '--output=json', '-f', 'raw', 't.qcow2'] },
          { img: ['map', '--output=json', 't.qcow2'] },
          { img: ['info', 't.qcow2'] },
          qcow('base.qcow2', '1M'),
          { setupIo: ['-c', 'write -P 7 64k 64k', 'base.qcow2'] },
          img('create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', 'top.qcow2'),
          io('top.qcow2', ...cmds('write -P 8 68k 4k', 'write -P 9 260k 4k', 'read -P 7 64k 4k', 'read -P 0 256k 4k')),
          { img: ['map', '--output=json', '-f', 'raw', 'top.qcow2'] },
          qcow('x.qcow2', '1M', '-o', 'extended_l2=on'),
          io('x.qcow2', ...cmds('write -P 1 0 1k', 'write -P 2 100k 4k', 'write -P 3 512k 64k')),
          { img: ['map', '--output=json', '-f', 'raw', 'x.qcow2'] },
          qcow('s.qcow2', '1M', '-o', 'cluster_size=4k'),
          io('s.qcow2', ...cmds('write -P 1 0 512', 'write -P 2 6k 1k')),
          { img: ['map', '--output=json', '-f', 'raw', 's.qcow2'] },
          { img: ['check', 's.qcow2'] },
        ],
      },
    ]
    : []),
  { name: 'qcow2 open errors', steps: [qcow(), { file: 'bad.qcow2', size: 512 }, { poke: 'bad.qcow2', offset: 0, hex: '514649fb00000009' }, io('-c', 'read 0 1', 'bad.qcow2'), io('-f', 'qcow2', '-c', 'read 0 1', 'nonexist.qcow2'), { file: 'empty.img', size: 0 }, io('-f', 'qcow2', 'empty.img'), io('--image-opts', 'driver=qcow2'), raw(), io('-c', 'open -o data-file.filename=r.img t.qcow2')] },

  { name: 'qcow2 runtime options: cache sizes, clean interval, overlap checks', steps: [qcow(), qcow('v2.qcow2', '1M', '-o', 'compat=0.10'), io('-c', 'open -o lazy-refcounts=on v2.qcow2'), io('-c', 'open -o overlap-check=none,overlap-check.template=all t.qcow2'), io('-c', 'open -o cache-size=1M,l2-cache-size=2M t.qcow2'), io('-c', 'open -o cache-size=1M,l2-cache-size=512k,refcount-cache-size=512k t.qcow2'), io('-c', 'open -o cache-size=1M,refcount-cache-size=2M t.qcow2'), io('-c', 'open -o l2-cache-entry-size=1000 t.qcow2'), io('-c', 'open -o l2-cache-entry-size=128k t.qcow2'), io('-c', 'open -o overlap-check.foo=on t.qcow2'), io('-c', 'open -o refcount-cache-size=1E t.qcow2'), io('-c', 'open -o cache-clean-interval=4294967296 t.qcow2'), io('-c', 'open -o overlap-check.template=foo t.qcow2'), io('-c', 'open -o cache-clean-interval=-1 t.qcow2'), io('-c', 'open -o cache-clean-interval=x t.qcow2'), io('-c', 'open -o overlap-check.inactive-l2=maybe t.qcow2'), io('-c', 'open -o l2-cache-size=1x t.qcow2'), io('-c', 'open -o l2-cache-size=1E,overlap-check=all,overlap-check.inactive-l2=off,cache-clean-interval=0 t.qcow2', '-c', 'write 0 64k', '-c', 'length'), io('-c', 'open -o cache-size=64k,l2-cache-entry-size=512 t.qcow2', '-c', 'read 0 64k')] },
  { name: '-s: writes go to a temporary overlay', compareFiles: true, steps: [raw('s.img'), qcow('q.qcow2', '1M'), io('-s', '-f', 'raw', 's.img', ...cmds('write -P 1 0 4k', 'read -P 1 0 4k', 'map', 'alloc 0 8k', 'info', 'length', 'flush')), io('-f', 'raw', '-c', 'read -P 0 0 4k', 's.img'), io('-s', '-r', '-f', 'raw', '-c', 'write 0 1', '-c', 'read 0 1', 's.img'), io(...cmds('open -s -o driver=raw s.img', 'write -P 2 64k 1', 'map')), io('-s', 'q.qcow2', ...cmds('write -P 3 0 64k', 'map', 'read -P 3 0 64k')), io('-c', 'read -P 0 0 64k', '-c', 'map', 'q.qcow2')] },
  { name: '-C: copy-on-read fills the top image', compareFiles: true, steps: [qcow('base.qcow2', '1M'), { setupIo: ['-c', 'write -P 7 0 1M', '-c', 'write -z 128k 64k', 'base.qcow2'] }, img('create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', 'top.qcow2'), io('-C', 'top.qcow2', ...cmds('map', 'read -P 7 4k 4k', 'map', 'read -P 0 128k 64k', 'read -P 7 200k 100k', 'map')), io('-c', 'map', 'top.qcow2'), io('-C', '-r', '-c', 'read 0 1', 'top.qcow2'), io(...cmds('open -C -r top.qcow2', 'open -C top.qcow2', 'read 0 1', 'map'))] },

  // ---- iotest 244's qemu-io steps
  {
    name: '244: data file name in the image, inexistent and missing data files',
    steps: [
      qcow('t.qcow2', '64M', '-o', 'data_file=t.qcow2.data'),
      io('--cache', 'writeback', '--aio', 'threads', '-f', 'qcow2', '-c', 'open t.qcow2', '-c', 'read -P 0 0 64k'),
      io('--cache', 'writeback', '--aio', 'threads', '-f', 'qcow2', '-c', 'open -odata-file.filename=t.qcow2.data t.qcow2', '-c', 'read -P 0 0 64k'),
      io('--cache', 'writeback', '--aio', 'threads', '-f', 'qcow2', '-c', 'open -odata-file.filename=inexistent t.qcow2', '-c', 'read -P 0 0 64k'),
      img('amend', '-odata_file=', 't.qcow2'),
      io('--cache', 'writeback', '--aio', 'threads', '-f', 'qcow2', '-c', 'open t.qcow2', '-c', 'read -P 0 0 64k'),
      io('--cache', 'writeback', '--aio', 'threads', '-f', 'qcow2', '-c', 'open -odata-file.filename=t.qcow2.data t.qcow2', '-c', 'read -P 0 0 64k'),
      io('--cache', 'writeback', '--aio', 'threads', '-f', 'qcow2', '-c', 'open -odata-file.filename=inexistent t.qcow2', '-c', 'read -P 0 0 64k'),
      qcow('t.qcow2', '64M'),
      io('--cache', 'writeback', '--aio', 'threads', '-f', 'qcow2', '-c', 'open -odata-file.filename=t.qcow2.data t.qcow2', '-c', 'read -P 0 0 64k'),
      io('--cache', 'writeback', '--aio', 'threads', '-f', 'qcow2', '-c', 'open -odata-file.filename=inexistent t.qcow2', '-c', 'read -P 0 0 64k'),
    ],
  },
  {
    name: '244: compressed write into a data-file image, efficient and raw layouts',
    compareFiles: true,
    steps: [
      qcow('t.qcow2', '64M', '-o', 'data_file=t.qcow2.data'),
      io('--cache', 'writeback', '-f', 'qcow2', '-c', 'write -c -P 0x22 0 1M', 't.qcow2'),
      io('--cache', 'writeback', '-f', 'qcow2', '-c', 'write -P 0x11 1M 4M', '-c', 'discard 2M 2M', '-c', 'write -z 3M 3M', 't.qcow2'),
      io('--cache', 'writeback', '-f', 'qcow2', '-c', 'read -P 0 0 1M', '-c', 'read -P 0x11 1M 1M', '-c', 'read -P 0 2M 4M', 't.qcow2'),
      io('--cache', 'writeback', '-f', 'raw', '-c', 'read -P 0 0 1M', '-c', 'read -P 0x11 1M 1M', '-c', 'read -P 0x11 4M 1M', '-c', 'read -P 0 5M 1M', 't.qcow2.data'),
      qcow('t.qcow2', '64M', '-o', 'data_file=t.qcow2.data,data_file_raw=on'),
      io('--cache', 'writeback', '-f', 'qcow2', '-c', 'write -P 0x11 1M 4M', '-c', 'discard 2M 2M', '-c', 'write -z 3M 3M', 't.qcow2'),
      io('--cache', 'writeback', '-f', 'qcow2', '-c', 'read -P 0 0 1M', '-c', 'read -P 0x11 1M 1M', '-c', 'read -P 0 2M 4M', 't.qcow2'),
      io('--cache', 'writeback', '-f', 'raw', '-c', 'read -P 0 0 1M', '-c', 'read -P 0x11 1M 1M', '-c', 'read -P 0 3M 3M', 't.qcow2.data'),
    ],
  },
  {
    name: '244: blkdebug data file flush fails qemu-io, writethrough fails the write',
    steps: [
      qcow('t.qcow2', '64M', '-o', 'data_file=t.qcow2.data'),
      io('-c', 'write 0 512', '-c', 'flush', '-t', 'writeback', "json:{\n         'driver': 'qcow2',\n         'file': {\n             'driver': 'file',\n             'filename': 't.qcow2'\n         },\n         'data-file': {\n             'driver': 'blkdebug',\n             'inject-error': [{\n                 'event': 'none',\n                 'iotype': 'flush'\n             }],\n             'image': {\n                 'driver': 'file',\n                 'filename': 't.qcow2.data'\n             }\n         }\n     }"),
      io('-c', 'write 0 512', '-c', 'flush', '-t', 'writethrough', "json:{'driver':'qcow2','file':{'driver':'file','filename':'t.qcow2'},'data-file':{'driver':'blkdebug','inject-error':[{'event':'none','iotype':'flush'}],'image':{'driver':'file','filename':'t.qcow2.data'}}}"),
      io('-t', 'writeback', '-c', 'flush', "json:{'driver':'qcow2','file':{'driver':'file','filename':'t.qcow2'},'data-file':{'driver':'blkdebug','inject-error':[{'event':'none','iotype':'flush'}],'image':{'driver':'file','filename':'t.qcow2.data'}}}"),
    ],
  },

  // ---- the drop-in CLI (a real child process)
  { name: 'drop-in CLI: statistics, errors and 2>&1 order', cli: true, steps: [raw(), io('-f', 'raw', 'r.img', ...cmds('write -P 1 0 4k', 'bogus', 'read -P 1 0 4k', 'read -P 2 0 1')), io('nonexist'), io('-V'), io('-x')] },
  { name: 'drop-in CLI: interactive commands from stdin', cli: true, steps: [raw(), ioIn('length\nread 0 1\nbogus\nquit\nlength\n', '-f', 'raw', 'r.img'), ioIn('', '-f', 'raw', 'r.img')] },
  { name: 'drop-in CLI: qcow2 with data file (244)', cli: true, compareFiles: true, steps: [qcow('t.qcow2', '64M', '-o', 'data_file=t.qcow2.data'), io('-f', 'qcow2', '-c', 'write -P 0x11 0 1M', 't.qcow2'), io('-f', 'qcow2', '-c', 'read -P 0x11 0 1M', 't.qcow2'), io('-c', 'open -odata-file.filename=inexistent t.qcow2', '-c', 'read -P 0 0 64k')] },
];
