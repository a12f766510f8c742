// The CUDA-on-CPU runtime behind include/cuda_runtime.h.
//
// A launch checks CUDA's limits first (block <= 1024 threads and 1024 x 1024 x 64,
// grid.y/z <= 65535, dynamic shared memory <= 48 KiB unless opted in with
// cudaFuncSetAttribute), as a GPU would refuse the launch. It then runs the
// blocks one after another. The threads of a block are
//  * fibers (default): each runs until its next __syncthreads, then the next
//    thread runs; deterministic, and a missing barrier shows up as a read of
//    shared memory that another thread has not written yet;
//  * OS threads meeting at a barrier (PYOPS_EMU_THREADS=1): real concurrency,
//    so ThreadSanitizer reports a missing barrier as a data race.
#include <setjmp.h>
#include <ucontext.h>

#include <barrier>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <thread>
#include <vector>

#include "cuda_runtime.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define PYOPS_EMU_ASAN 1
#endif

thread_local uint3 threadIdx;
thread_local uint3 blockIdx;
thread_local dim3 blockDim;
thread_local dim3 gridDim;

namespace {

thread_local cudaError_t last_error = cudaSuccess;
std::map<const void*, int> max_dynamic_shared;  // cudaFuncSetAttribute opt-ins
constexpr size_t kDefaultSharedLimit = 48 * 1024, kOptInSharedLimit = 227 * 1024;
constexpr size_t kStack = 256 * 1024;  // fiber stacks: kernels keep arrays on the stack

unsigned char* dynamic_smem = nullptr;
bool dry_run = false;  // check launches without running them (shapes too large to emulate)

// ---- fibers ----
// A fiber is a stack that runs thread bodies one after another: started once with
// makecontext, then switched with _setjmp/_longjmp, which (unlike swapcontext) make no
// system call, so a block of 256 threads without a barrier costs 512 jumps.
struct Fiber {
  std::unique_ptr<char[]> stack{new char[kStack]};
  ucontext_t start;
  jmp_buf env;
  bool started = false, done = true;
};
thread_local jmp_buf sched_env;
thread_local Fiber* fiber_now = nullptr;  // the running fiber; null on the scheduler's stack
thread_local const pyops_emu::Body* fiber_body = nullptr;
#ifdef PYOPS_EMU_ASAN
thread_local void* sched_stack_bottom = nullptr;
thread_local size_t sched_stack_size = 0;
#endif

// from the running fiber back to the scheduler
void fiber_yield() {
  Fiber* f = fiber_now;
  if (_setjmp(f->env) == 0) {
#ifdef PYOPS_EMU_ASAN
    __sanitizer_start_switch_fiber(nullptr, sched_stack_bottom, sched_stack_size);
#endif
    _longjmp(sched_env, 1);
  }
#ifdef PYOPS_EMU_ASAN
  __sanitizer_finish_switch_fiber(nullptr, (const void**)&sched_stack_bottom, &sched_stack_size);
#endif
}

void fiber_main() {
#ifdef PYOPS_EMU_ASAN
  __sanitizer_finish_switch_fiber(nullptr, (const void**)&sched_stack_bottom, &sched_stack_size);
#endif
  for (;;) {  // one thread body per turn; done, then wait to be given the next thread
    fiber_body->call(fiber_body->state);
    fiber_now->done = true;
    fiber_yield();
  }
}

// from the scheduler into fiber f (its current thread resumes, or a new one starts)
void fiber_resume(Fiber& f) {
  fiber_now = &f;
  if (_setjmp(sched_env) == 0) {
#ifdef PYOPS_EMU_ASAN
    __sanitizer_start_switch_fiber(nullptr, f.stack.get(), kStack);
#endif
    if (f.started) _longjmp(f.env, 1);
    f.started = true;
    ucontext_t here;
    getcontext(&f.start);
    f.start.uc_stack.ss_sp = f.stack.get();
    f.start.uc_stack.ss_size = kStack;
    f.start.uc_link = nullptr;
    makecontext(&f.start, fiber_main, 0);
    swapcontext(&here, &f.start);  // never returns here: the fiber comes back by _longjmp
  }
#ifdef PYOPS_EMU_ASAN
  __sanitizer_finish_switch_fiber(nullptr, nullptr, nullptr);
#endif
  fiber_now = nullptr;
}

void set_thread(unsigned t, dim3 block) {
  threadIdx = {t % block.x, (t / block.x) % block.y, t / (block.x * block.y)};
}

void run_block_fibers(const pyops_emu::Body& body, dim3 block, std::vector<Fiber>& fibers) {
  const unsigned n = block.x * block.y * block.z;
  fiber_body = &body;
  for (unsigned t = 0; t < n; ++t) fibers[t].done = false;
  // rounds: every live thread runs to its next barrier (or its end)
  for (unsigned live = n; live;) {
    live = 0;
    for (unsigned t = 0; t < n; ++t) {
      Fiber& f = fibers[t];
      if (f.done) continue;
      set_thread(t, block);
      fiber_resume(f);
      if (!f.done) ++live;
    }
  }
}

// ---- OS threads ----
thread_local std::barrier<>* thread_barrier = nullptr;

void run_block_threads(const pyops_emu::Body& body, dim3 grid, dim3 block, uint3 bid) {
  const unsigned n = block.x * block.y * block.z;
  std::barrier<> bar((std::ptrdiff_t)n);
  std::vector<std::thread> threads;
  threads.reserve(n);
  for (unsigned t = 0; t < n; ++t)
    threads.emplace_back([&, t] {
      blockIdx = bid;
      blockDim = block;
      gridDim = grid;
      set_thread(t, block);
      thread_barrier = &bar;
      body.call(body.state);
      bar.arrive_and_drop();  // an exited thread no longer holds the others at a barrier
    });
  for (auto& th : threads) th.join();
}

bool use_threads() {
  static const bool v = [] {
    const char* e = std::getenv("PYOPS_EMU_THREADS");
    return e && *e == '1';
  }();
  return v;
}

}  // namespace

void __syncthreads() {
  if (thread_barrier) {
    thread_barrier->arrive_and_wait();
  } else if (fiber_now) {
    fiber_yield();
  } else {
    std::fprintf(stderr, "pyops_emu: __syncthreads outside a kernel\n");
    std::abort();
  }
}

cudaError_t cudaGetLastError() {
  const cudaError_t e = last_error;
  last_error = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError() { return last_error; }

const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorLaunchOutOfResources: return "too many resources requested for launch";
  }
  return "unknown error";
}

cudaError_t cudaFuncSetAttribute(const void* func, cudaFuncAttribute attr, int value) {
  if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize || value < 0 || (size_t)value > kOptInSharedLimit)
    return last_error = cudaErrorInvalidValue;
  max_dynamic_shared[func] = value;
  return cudaSuccess;
}

namespace pyops_emu {

void* dynamic_shared() { return dynamic_smem; }
void set_dry_run(bool on) { dry_run = on; }

void launch(const void* kernel, Body body, dim3 grid, dim3 block, size_t shared, cudaStream_t) {
  const uint64_t threads = (uint64_t)block.x * block.y * block.z;
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > 2147483647u || grid.y > 65535 || grid.z > 65535 ||
      threads == 0 || threads > 1024 || block.x > 1024 || block.y > 1024 || block.z > 64) {
    last_error = cudaErrorInvalidConfiguration;
    return;
  }
  const auto opt = max_dynamic_shared.find(kernel);
  if (shared > (opt == max_dynamic_shared.end() ? kDefaultSharedLimit : (size_t)opt->second)) {
    last_error = cudaErrorInvalidValue;
    return;
  }
  if (dry_run) return;
  // exactly the bytes asked for, so AddressSanitizer sees an access past them
  std::unique_ptr<unsigned char[]> smem(shared ? new unsigned char[shared] : nullptr);
  dynamic_smem = smem.get();
  // fiber stacks are kept from launch to launch
  static std::vector<Fiber> fibers;
  if (!use_threads() && fibers.size() < threads) fibers.resize(threads);
  gridDim = grid;
  blockDim = block;
  for (unsigned z = 0; z < grid.z; ++z)
    for (unsigned y = 0; y < grid.y; ++y)
      for (unsigned x = 0; x < grid.x; ++x) {
        if (use_threads()) {
          run_block_threads(body, grid, block, {x, y, z});
        } else {
          blockIdx = {x, y, z};
          run_block_fibers(body, block, fibers);
        }
      }
  dynamic_smem = nullptr;
}

}  // namespace pyops_emu
