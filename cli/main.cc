#include <cstdio>
#include <iostream>

#include "app.h"

int main(int argc, char** argv) {
  // Progress lines (train's steps) reach a pipe, tee or nohup's file when they happen.
  std::setvbuf(stdout, nullptr, _IOLBF, BUFSIZ);
  return loraplan::cli::run(argc, argv, std::cout, std::cerr);
}
