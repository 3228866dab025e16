// What the hand-written vector paths may use, decided in one place (Highway's dynamic dispatch is
// the model): whether this build may compile them at all, and which CPU features the machine
// running it has (asked once, at run time, so one binary serves AVX-512, AVX2 and valgrind,
// which hides AVX-512).
//
//   MOEDIST_SANITIZED     ASan or TSan (GCC or clang): their instrumentation does not see
//                         through intrinsics and their runtimes are not ready when the loader
//                         runs ifunc resolvers, so the x86 vector paths are compiled out
//   MOEDIST_VECTOR_X86    x86-64 and not sanitized: the intrinsics paths exist
//   MOEDIST_MULTIVERSION  GCC, MOEDIST_VECTOR_X86: one clone per x86-64 level of a scalar
//                         kernel (v4, v3, baseline), chosen at load time by CPUID
#pragma once

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define MOEDIST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define MOEDIST_SANITIZED 1
#endif
#endif

#if defined(__x86_64__) && !defined(MOEDIST_SANITIZED)
#define MOEDIST_VECTOR_X86 1
#endif

#if defined(MOEDIST_VECTOR_X86) && defined(__GNUC__) && !defined(__clang__)
#define MOEDIST_MULTIVERSION \
    __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define MOEDIST_MULTIVERSION
#endif

namespace moedist::util {

// The machine's features (false off x86-64), each asked once.
bool cpu_avx2();
bool cpu_f16c();          // AVX2 and F16C (exact fp16 <-> fp32)
bool cpu_avx512();        // AVX-512 F, BW and VL
bool cpu_avx512_vbmi();   // cpu_avx512() and VBMI (byte permutes)

}  // namespace moedist::util
