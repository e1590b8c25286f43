// Drives the data path's Buf (src/native/dataplane/buf.h) the way a flow's queue
// is driven: appends and in-place reads up to a pending bound, partial takes and
// consumes, trims. Prints one JSON line: the most storage held against the most
// bytes it had to hold at once, the bytes moved inside the storage against the
// bytes that went through, and whether every byte came out in order.
// Built and run by test/unit/native/buf.test.ts.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "../../src/native/dataplane/buf.h"

using warren::dp::Buf;

namespace {

uint64_t state = 0x9e3779b97f4a7c15ull;
uint64_t Rand(uint64_t n) {
  state ^= state << 13;
  state ^= state >> 7;
  state ^= state << 17;
  return state % n;
}

}  // namespace

int main(int argc, char** argv) {
  const size_t pendCap = 256 * 1024;
  const long ops = argc > 1 ? atol(argv[1]) : 200000;
  Buf b;
  uint8_t in = 0, out = 0;  // the next byte written and the next byte expected
  size_t maxNeed = 0, maxCap = 0;
  double worst = 0;  // the highest storage ÷ most bytes held so far
  uint64_t moved = 0, through = 0;
  bool ordered = true;
  for (long i = 0; i < ops; i++) {
    uint64_t op = Rand(10);
    if (op < 5) {
      // a read of up to 64 KiB, bounded by what may wait (kPendCap)
      size_t room = pendCap - b.size();
      if (room == 0) continue;
      size_t n = 1 + Rand(room < 65536 ? room : 65536);
      if (b.size() + n > maxNeed) maxNeed = b.size() + n;
      const char* before = b.empty() ? nullptr : b.ptr();
      size_t live = b.size();
      char* p = b.prepare(n);
      if (before != nullptr && b.ptr() != before) moved += live;
      for (size_t k = 0; k < n; k++) p[k] = static_cast<char>(in++);
      b.commit(n);
      through += n;
    } else if (op < 9) {
      // a socket or nghttp2 takes part of what waits
      if (b.empty()) continue;
      size_t n = 1 + Rand(b.size());
      for (size_t k = 0; k < n; k++)
        if (static_cast<uint8_t>(b.ptr()[k]) != out++) ordered = false;
      if (Rand(2) == 0) b.take(n);
      else b.consume(n);
    } else {
      b.trim();
    }
    if (b.capacity() > maxCap) maxCap = b.capacity();
    if (maxNeed > 0 && static_cast<double>(b.capacity()) / static_cast<double>(maxNeed) > worst)
      worst = static_cast<double>(b.capacity()) / static_cast<double>(maxNeed);
  }
  printf("{\"ops\":%ld,\"maxNeed\":%zu,\"maxCap\":%zu,\"worstRatio\":%.3f,\"moved\":%llu,\"through\":%llu,\"ordered\":%s}\n",
         ops, maxNeed, maxCap, worst, static_cast<unsigned long long>(moved), static_cast<unsigned long long>(through),
         ordered ? "true" : "false");
  return 0;
}
