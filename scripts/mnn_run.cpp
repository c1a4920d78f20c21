// Runs an MNN model (.mnn, from MNNConvert) on the CPU on one float32 input read from a raw little-endian file,
// and writes its first output the same way: scripts/ort_run.js's counterpart for MNN, with the same command
// line, so that bin/eval --mnn compares MNN with nibble as --onnx compares ONNX Runtime. MNN is not a
// dependency of nibble: scripts/mnn_setup.sh builds this file against an MNN built from its public source.
// Usage: mnn_run MODEL.mnn INPUT.f32 N,C,H,W OUTPUT.f32 [--threads T] [--batch B] [--seconds S]
// --seconds S: time batch-B inference for about S seconds instead and print the median milliseconds per batch.
// NB_MNN_WINOGRAD=0 in the environment turns off MNN's Winograd convolutions (its default picks them for 3x3
// kernels, whose float rounding differs from a direct convolution's by about 1e-4 of the output's range).
// Prints {"output": ..., "dims": [...]} on success; exits 1 with a message otherwise.
#include <MNN/Interpreter.hpp>
#include <MNN/Tensor.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

static int fail(const std::string &what) {
    std::fprintf(stderr, "mnn_run: %s\n", what.c_str());
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 5) return fail("usage: mnn_run MODEL.mnn INPUT.f32 N,C,H,W OUTPUT.f32 [--threads T] [--batch B] [--seconds S]");
    int threads = 1, batch = 0;
    double seconds = 0;
    for (int i = 5; i + 1 < argc; i += 2) {
        if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--batch")) batch = std::atoi(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--seconds")) seconds = std::atof(argv[i + 1]);
        else return fail(std::string("unknown option ") + argv[i]);
    }
    int dims[4];
    if (std::sscanf(argv[3], "%d,%d,%d,%d", &dims[0], &dims[1], &dims[2], &dims[3]) != 4)
        return fail(std::string("dims ") + argv[3] + ": expected N,C,H,W");
    size_t per = (size_t)dims[1] * dims[2] * dims[3], count = per * dims[0];
    std::vector<float> in(count);
    std::ifstream fin(argv[2], std::ios::binary);
    if (!fin.read(reinterpret_cast<char *>(in.data()), (std::streamsize)(count * sizeof(float))))
        return fail(std::string(argv[2]) + ": fewer than " + std::to_string(count) + " floats");
    std::shared_ptr<MNN::Interpreter> net(MNN::Interpreter::createFromFile(argv[1]), MNN::Interpreter::destroy);
    if (!net) return fail(std::string(argv[1]) + ": MNN cannot read it");
    MNN::ScheduleConfig sc;
    sc.type = MNN_FORWARD_CPU;
    sc.numThread = threads;
    MNN::BackendConfig bc;
    bc.precision = MNN::BackendConfig::Precision_High; // float32 where it computes in float (no fp16/bf16)
    sc.backendConfig = &bc;
    const char *wino = std::getenv("NB_MNN_WINOGRAD");
    if (wino && !std::strcmp(wino, "0")) net->setSessionHint(MNN::Interpreter::WINOGRAD_MEMORY_LEVEL, 0);
    MNN::Session *session = net->createSession(sc);
    if (!session) return fail(std::string(argv[1]) + ": MNN cannot make a session for it");
    MNN::Tensor *input = net->getSessionInput(session, nullptr);
    int N = dims[0], B = batch > 0 ? std::min(batch, N) : N;
    std::vector<float> out;
    std::vector<int> out_dims;
    int planned = 0; // the batch the session is resized for
    auto run = [&](int start, int n) -> MNN::Tensor * {
        if (n != planned) {
            net->resizeTensor(input, {n, dims[1], dims[2], dims[3]});
            net->resizeSession(session);
            planned = n;
        }
        MNN::Tensor host(input, MNN::Tensor::CAFFE);
        std::memcpy(host.host<float>(), in.data() + (size_t)start * per, sizeof(float) * per * n);
        input->copyFromHostTensor(&host);
        net->runSession(session);
        return net->getSessionOutput(session, nullptr);
    };
    if (seconds > 0) {
        std::vector<double> ms;
        auto begin = std::chrono::steady_clock::now();
        run(0, B); // warm up (and plan) once
        while (std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count() < seconds || ms.size() < 5) {
            auto t0 = std::chrono::steady_clock::now();
            MNN::Tensor *o = run(0, B);
            MNN::Tensor host(o, MNN::Tensor::CAFFE);
            o->copyToHostTensor(&host);
            ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
        }
        std::sort(ms.begin(), ms.end());
        std::printf("{\"batch\": %d, \"threads\": %d, \"median_ms\": %.4f, \"runs\": %zu}\n", B, threads,
                    ms[ms.size() / 2], ms.size());
        return 0;
    }
    for (int start = 0; start < N; start += B) {
        int n = std::min(B, N - start);
        MNN::Tensor *o = run(start, n);
        MNN::Tensor host(o, MNN::Tensor::CAFFE);
        o->copyToHostTensor(&host);
        out.insert(out.end(), host.host<float>(), host.host<float>() + host.elementSize());
        if (out_dims.empty()) out_dims = host.shape();
        else out_dims[0] += host.shape()[0];
    }
    std::ofstream fout(argv[4], std::ios::binary);
    fout.write(reinterpret_cast<const char *>(out.data()), (std::streamsize)(out.size() * sizeof(float)));
    if (!fout) return fail(std::string(argv[4]) + ": cannot write the outputs");
    std::printf("{\"output\": \"%s\", \"dims\": [", argv[4]);
    for (size_t i = 0; i < out_dims.size(); i++) std::printf("%s%d", i ? ", " : "", out_dims[i]);
    std::printf("]}\n");
    return 0;
}
