// The native data path's byte queue (docs/architecture.md §2, Native data path):
// header-only, so that its bounds are checked on their own (test/unit/native/buf.test.ts).
#pragma once

#include <string.h>

#include <memory>

namespace warren::dp {

// A FIFO of bytes whose storage is returned as soon as it drains (idle
// connections hold no buffer), or, with take(), kept for the next bytes
// until the owner's Trim. A reader may fill its free tail in place
// (tail() + commit()): a socket's bytes land where they wait, not in a
// scratch buffer first.
class Buf {
 public:
  size_t size() const { return tail_ - head_; }
  bool empty() const { return size() == 0; }
  size_t capacity() const { return cap_; }
  const char* ptr() const { return data_.get() + head_; }
  char* tail() { return data_.get() + tail_; }
  size_t tailRoom() const { return cap_ - tail_; }
  // tail() with room for at least n bytes
  char* prepare(size_t n) {
    if (tailRoom() < n) Make(n);
    return tail();
  }
  void commit(size_t n) {
    tail_ += n;
    if (size() > peak_) peak_ = size();
  }
  void append(const char* p, size_t n) {
    if (n == 0) return;
    memcpy(prepare(n), p, n);
    commit(n);
  }
  void consume(size_t n) {
    head_ += n;
    if (head_ >= tail_) clear();
  }
  void clear() {
    data_.reset();
    cap_ = head_ = tail_ = peak_ = 0;
  }
  // consume() that keeps the storage when drained: a busy session's batches
  // and a busy stream's bytes reuse it instead of growing a new one (and
  // faulting its pages in) each time; the owner's Trim returns it.
  void take(size_t n) {
    head_ += n;
    if (head_ >= tail_) head_ = tail_ = 0;
  }
  // Called once a second (the worker's tick): kept storage goes back unless
  // the bytes of the last second filled at least a quarter of it, so a
  // session or stream that moves a little now and then holds storage sized
  // to what it moves, not to the largest batch it ever had.
  void trim() {
    if (empty() && peak_ * 4 < cap_) clear();
    peak_ = size();
  }

 private:
  // Room for n more bytes. The storage never exceeds twice the most bytes it
  // had to hold at once (live + n), and each byte is moved at most once on
  // average: the live bytes move to the front when at least as many were
  // consumed before them, or when the storage is twice what they need;
  // otherwise the storage is reallocated to twice what they need.
  void Make(size_t n) {
    size_t live = size();
    size_t need = live + n;
    if ((head_ >= live && cap_ >= need) || cap_ >= 2 * need) {
      memmove(data_.get(), data_.get() + head_, live);
    } else {
      // empty: exactly what is asked (nothing to move, so nothing to amortize)
      size_t cap = live == 0 ? n : 2 * need;
      std::unique_ptr<char[]> grown(new char[cap]);
      if (live > 0) memcpy(grown.get(), data_.get() + head_, live);
      data_ = std::move(grown);
      cap_ = cap;
    }
    head_ = 0;
    tail_ = live;
  }

  std::unique_ptr<char[]> data_;
  size_t cap_ = 0, head_ = 0, tail_ = 0;
  size_t peak_ = 0;  // the most bytes held since the last trim()
};

}  // namespace warren::dp
