// Torch-free unit tests of csrc/include/pyops/fewbit.h (run by ctest).
#include <cstdio>

#include "pyops/fewbit.h"

namespace fb = pyops::fewbit;

int main() {
  int failures = 0;
  const float borders[3] = {-1.0f, 0.0f, 1.0f};
  const float xs[6] = {-2.0f, -1.0f, -0.5f, 0.0f, 0.5f, 3.0f};
  const unsigned want[6] = {0, 0, 1, 1, 2, 3};  // a value on a border takes the lower piece
  for (int i = 0; i < 6; ++i)
    if (fb::code(xs[i], borders, 3) != want[i]) {
      std::printf("code(%g) = %u, expected %u\n", xs[i], fb::code(xs[i], borders, 3), want[i]);
      ++failures;
    }
  for (int bits = 1; bits <= 8; ++bits) {  // pack/unpack round trip; LSB-first layout
    unsigned codes[8];
    for (int j = 0; j < 8; ++j) codes[j] = (7u * j + 3u) & ((1u << bits) - 1u);
    const unsigned long long word = fb::pack8(codes, bits);
    if (bits < 8 && (word >> (8 * bits))) {
      std::printf("bits=%d: pack8 spills past %d bytes\n", bits, bits);
      ++failures;
    }
    if ((word & ((1u << bits) - 1u)) != codes[0]) ++failures;
    for (int j = 0; j < 8; ++j)
      if (fb::unpack(word, j, bits) != codes[j]) {
        std::printf("bits=%d: element %d round-trips to %u, expected %u\n", bits, j, fb::unpack(word, j, bits),
                    codes[j]);
        ++failures;
      }
  }
  if (failures) std::printf("%d failure(s)\n", failures);
  else std::printf("fewbit.h: all checks passed\n");
  return failures ? 1 : 0;
}
