//===- LaunchTest.cpp - reading the launchers' environments ---------------===//

#include "loom/runtime/Job.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

using namespace loom::runtime;

namespace {

Result<LaunchEnvironment>
launch(const std::map<std::string, std::string> &env) {
  return detectLaunch([&](const char *name) -> const char * {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  });
}

TEST(Launch, NoLauncherIsOneProcess) {
  Result<LaunchEnvironment> e = launch({{"HOME", "/root"}});
  ASSERT_TRUE(e.ok()) << e.message();
  EXPECT_FALSE(e->multiProcess());
  EXPECT_EQ(e->worldSize, 1);
}

TEST(Launch, OpenMpi) {
  Result<LaunchEnvironment> e = launch({{"OMPI_COMM_WORLD_RANK", "3"},
                                        {"OMPI_COMM_WORLD_SIZE", "8"},
                                        {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
                                        {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"},
                                        // torchrun's names lose to mpirun's
                                        {"RANK", "0"},
                                        {"WORLD_SIZE", "1"}});
  ASSERT_TRUE(e.ok()) << e.message();
  EXPECT_EQ(e->launcher, LaunchEnvironment::Launcher::OpenMpi);
  EXPECT_EQ(e->rank, 3);
  EXPECT_EQ(e->worldSize, 8);
  EXPECT_EQ(e->localRank, 1);
  EXPECT_EQ(e->localWorldSize, 2);
  EXPECT_EQ(e->describe(), "mpirun (rank 3 of 8, local rank 1 of 2)");
}

TEST(Launch, Torchrun) {
  Result<LaunchEnvironment> e =
      launch({{"RANK", "5"},
              {"WORLD_SIZE", "8"},
              {"LOCAL_RANK", "1"},
              {"LOCAL_WORLD_SIZE", "4"},
              {"MASTER_ADDR", "node0"},
              {"MASTER_PORT", "29500"},
              // torchrun under srun: its own variables win over Slurm's
              {"SLURM_PROCID", "1"},
              {"SLURM_STEP_NUM_TASKS", "2"}});
  ASSERT_TRUE(e.ok()) << e.message();
  EXPECT_EQ(e->launcher, LaunchEnvironment::Launcher::Torchrun);
  EXPECT_EQ(e->rank, 5);
  EXPECT_EQ(e->localRank, 1);
  EXPECT_EQ(e->masterAddr, "node0");
  EXPECT_EQ(e->masterPort, 29500);
}

TEST(Launch, TorchrunNeedsTheRendezvousAddress) {
  Result<LaunchEnvironment> e = launch({{"RANK", "0"}, {"WORLD_SIZE", "2"}});
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.message().find("MASTER_ADDR and MASTER_PORT"), std::string::npos)
      << e.message();
}

TEST(Launch, Slurm) {
  Result<LaunchEnvironment> e = launch({{"SLURM_PROCID", "6"},
                                        {"SLURM_STEP_NUM_TASKS", "8"},
                                        {"SLURM_NTASKS", "8"},
                                        {"SLURM_LOCALID", "2"},
                                        {"SLURM_STEP_TASKS_PER_NODE", "4(x2)"},
                                        {"MASTER_ADDR", "node0"},
                                        {"MASTER_PORT", "6000"}});
  ASSERT_TRUE(e.ok()) << e.message();
  EXPECT_EQ(e->launcher, LaunchEnvironment::Launcher::Slurm);
  EXPECT_EQ(e->rank, 6);
  EXPECT_EQ(e->worldSize, 8);
  EXPECT_EQ(e->localRank, 2);
  EXPECT_EQ(e->localWorldSize, 4);
}

TEST(Launch, AnSbatchScriptsShellIsNotARank) {
  // sbatch sets SLURM_PROCID=0 and SLURM_NTASKS in the batch script's
  // environment; only srun's processes have the step's variables.
  Result<LaunchEnvironment> e =
      launch({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "8"}});
  ASSERT_TRUE(e.ok()) << e.message();
  EXPECT_FALSE(e->multiProcess());
}

TEST(Launch, MalformedValuesNameTheVariable) {
  struct Case {
    std::map<std::string, std::string> env;
    std::string expect;
  } cases[] = {
      {{{"OMPI_COMM_WORLD_RANK", "two"}, {"OMPI_COMM_WORLD_SIZE", "4"}},
       "OMPI_COMM_WORLD_RANK='two' is not a whole number"},
      {{{"OMPI_COMM_WORLD_RANK", "4"},
        {"OMPI_COMM_WORLD_SIZE", "4"},
        {"OMPI_COMM_WORLD_LOCAL_RANK", "0"},
        {"OMPI_COMM_WORLD_LOCAL_SIZE", "1"}},
       "OMPI_COMM_WORLD_RANK=4 is not below OMPI_COMM_WORLD_SIZE=4"},
      {{{"OMPI_COMM_WORLD_RANK", "0"}, {"OMPI_COMM_WORLD_SIZE", "4"}},
       "the launcher did not set OMPI_COMM_WORLD_LOCAL_RANK"},
      {{{"RANK", "-1"}, {"WORLD_SIZE", "2"}}, "RANK='-1'"},
      {{{"RANK", "0"}, {"WORLD_SIZE", "0"}}, "WORLD_SIZE=0"},
      {{{"RANK", "0"},
        {"WORLD_SIZE", "2"},
        {"MASTER_ADDR", "a"},
        {"MASTER_PORT", "70000"}},
       "MASTER_PORT='70000' is not a whole number from 0 to 65535"},
      {{{"RANK", "1"},
        {"WORLD_SIZE", "2"},
        {"LOCAL_RANK", "3"},
        {"LOCAL_WORLD_SIZE", "2"},
        {"MASTER_ADDR", "a"},
        {"MASTER_PORT", "1"}},
       "LOCAL_RANK=3 is not below LOCAL_WORLD_SIZE=2"},
      {{{"SLURM_PROCID", "x"}, {"SLURM_STEP_NUM_TASKS", "2"}},
       "SLURM_PROCID='x'"},
  };
  for (const Case &c : cases) {
    Result<LaunchEnvironment> e = launch(c.env);
    ASSERT_FALSE(e.ok()) << c.expect;
    EXPECT_NE(e.message().find(c.expect), std::string::npos)
        << "expected '" << c.expect << "' in: " << e.message();
  }
}

} // namespace
