// docs/contract.md §5's binary32 arithmetic needs round-to-nearest-even with no flush-to-zero and no
// denormals-are-zero, whatever the caller set (-ffast-math's crtfastmath, torch's
// set_flush_denormal, fesetround): this guard sets exactly that for a call and restores the
// caller's control word on exit.
#pragma once

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

namespace moedist::util {

class FloatEnvironment {
public:
#if defined(__x86_64__) || defined(__i386__)
    FloatEnvironment() : saved_(_mm_getcsr()) { _mm_setcsr(kDefault); }
    ~FloatEnvironment() { _mm_setcsr(saved_); }

private:
    static constexpr unsigned kDefault = 0x1F80;  // all exceptions masked, RNE, FTZ = DAZ = 0
    unsigned saved_;
#else
    FloatEnvironment() = default;
#endif
public:
    FloatEnvironment(const FloatEnvironment&) = delete;
    FloatEnvironment& operator=(const FloatEnvironment&) = delete;
};

}  // namespace moedist::util
