//===- FilesTest.cpp - checked reads and safe writes of files -------------===//
//
// Tests run as root, so "cannot be written" is made with a path under a
// regular file, never with chmod; and nothing here writes to the real
// /dev/null in a way that could replace it: devices are reached through a
// link in a temporary directory, and only written through.
//
//===----------------------------------------------------------------------===//

#include "loom/runtime/Files.h"
#include "loom/runtime/Checkpoint.h"

#include "TempDir.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <dirent.h>
#include <fcntl.h>
#include <fstream>
#include <future>
#include <sstream>
#include <string>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace loom::runtime;

namespace {

class FilesTest : public TempDir {
protected:
  std::string contents(const std::string &path) {
    std::ifstream file(path, std::ios::binary);
    std::stringstream s;
    s << file.rdbuf();
    return s.str();
  }
  /// The names in the directory, sorted, space-separated.
  std::string listing() {
    std::vector<std::string> names;
    DIR *d = opendir(dir.c_str());
    while (dirent *e = readdir(d))
      if (std::string(e->d_name) != "." && std::string(e->d_name) != "..")
        names.push_back(e->d_name);
    closedir(d);
    std::sort(names.begin(), names.end());
    std::string out;
    for (const std::string &n : names)
      out += (out.empty() ? "" : " ") + n;
    return out;
  }
  mode_t typeOf(const std::string &path) {
    struct stat st;
    if (lstat(path.c_str(), &st) != 0)
      return 0;
    return st.st_mode & S_IFMT;
  }
};

std::vector<uint8_t> bytesOf(const std::string &s) {
  return std::vector<uint8_t>(s.begin(), s.end());
}

bool contains(const std::string &s, const std::string &part) {
  return s.find(part) != std::string::npos;
}

TEST_F(FilesTest, ReadingRefusesWhatIsNotARegularFile) {
  auto directory = readWholeFile(dir, "the plan");
  ASSERT_FALSE(directory.ok());
  EXPECT_EQ(directory.message(),
            "cannot read the plan '" + dir +
                "': it is a directory, not a regular file");
  auto zero = readWholeFile("/dev/zero", "the plan");
  ASSERT_FALSE(zero.ok());
  EXPECT_TRUE(contains(zero.message(), "'/dev/zero': it is a character device"))
      << zero.message();

  // A FIFO without a writer: opening it must not wait for one. Should it
  // block, a writer is opened after 10 s to release it, and the test fails.
  std::string fifo = dir + "/fifo";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  std::promise<std::string> message;
  std::future<std::string> done = message.get_future();
  std::thread reader([&] {
    auto read = readWholeFile(fifo, "the data file");
    message.set_value(read.ok() ? "read" : read.message());
  });
  bool blocked =
      done.wait_for(std::chrono::seconds(10)) == std::future_status::timeout;
  if (blocked)
    close(open(fifo.c_str(), O_WRONLY | O_NONBLOCK));
  reader.join();
  EXPECT_FALSE(blocked) << "reading a FIFO waited for a writer";
  EXPECT_EQ(done.get(), "cannot read the data file '" + fifo +
                            "': it is a FIFO, not a regular file");
}

TEST_F(FilesTest, ReadingRefusesAFileOverTheCallersBound) {
  std::string path = write("big.plan", std::string(100, 'x'));
  auto over = readWholeFile(path, "the plan", 99);
  ASSERT_FALSE(over.ok());
  EXPECT_EQ(over.message(), "the plan '" + path +
                                "' is 100 bytes, more than the 99 bytes it "
                                "may be: is it the right file?");
  auto within = readWholeFile(path, "the plan", 100);
  ASSERT_TRUE(within.ok()) << within.message();
  EXPECT_EQ(*within, bytesOf(std::string(100, 'x')));
  auto missing = readWholeFile(dir + "/none", "the plan");
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(contains(missing.message(),
                       "cannot open the plan '" + dir + "/none': No such file"))
      << missing.message();
}

TEST_F(FilesTest, ReplacesARegularFileAndNeverFollowsAStaleTemporary) {
  std::string path = write("out.plan", "old");
  // A leftover .tmp that is a link to another file: writing must not go
  // through it.
  std::string victim = write("victim", "keep me");
  ASSERT_EQ(symlink(victim.c_str(), (path + ".tmp").c_str()), 0);
  ASSERT_TRUE(writeFileAtomically(path, bytesOf("new")).ok());
  EXPECT_EQ(contents(path), "new");
  EXPECT_EQ(contents(victim), "keep me");
  EXPECT_EQ(listing(), "out.plan victim");
}

TEST_F(FilesTest, WritesThroughASymbolicLinkWhichStays) {
  std::string target = write("target.plan", "old");
  std::string link = dir + "/link.plan";
  ASSERT_EQ(symlink("target.plan", link.c_str()), 0); // relative, as ln -s
  ASSERT_TRUE(writeFileAtomically(link, bytesOf("new")).ok());
  EXPECT_EQ(typeOf(link), S_IFLNK);
  EXPECT_EQ(contents(target), "new");
  EXPECT_EQ(listing(), "link.plan target.plan");

  // A link to nothing is refused, and stays as it was.
  std::string dangling = dir + "/dangling";
  ASSERT_EQ(symlink("missing", dangling.c_str()), 0);
  Status s = writeFileAtomically(dangling, bytesOf("x"));
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(contains(s.message(), "'" + dangling +
                                        "': it is a symbolic link that does "
                                        "not lead to a file"))
      << s.message();
  EXPECT_EQ(typeOf(dangling), S_IFLNK);
  EXPECT_EQ(listing(), "dangling link.plan target.plan");
}

TEST_F(FilesTest, WritesThroughToACharacterDeviceWithoutReplacingIt) {
  // /dev/null through a link here: written through, the link and the
  // device left as they are (a rename would replace one of them).
  std::string link = dir + "/null";
  ASSERT_EQ(symlink("/dev/null", link.c_str()), 0);
  Status s = writeFileAtomically(link, bytesOf("plan bytes"));
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(typeOf(link), S_IFLNK);
  EXPECT_EQ(typeOf("/dev/null"), S_IFCHR);
  EXPECT_EQ(listing(), "null");
  EXPECT_TRUE(checkWritable(link).ok());
}

TEST_F(FilesTest, RefusesAFifoADirectoryAndAnEmptyNameLeavingNothing) {
  std::string fifo = dir + "/fifo";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  Status toFifo = writeFileAtomically(fifo, bytesOf("x"));
  ASSERT_FALSE(toFifo.ok());
  EXPECT_TRUE(contains(toFifo.message(), "cannot write '" + fifo +
                                             "': it is a FIFO; name a "
                                             "regular file"))
      << toFifo.message();
  EXPECT_EQ(typeOf(fifo), S_IFIFO);

  std::string sub = dir + "/sub";
  ASSERT_EQ(mkdir(sub.c_str(), 0755), 0);
  Status toDirectory = writeFileAtomically(sub, bytesOf("x"));
  ASSERT_FALSE(toDirectory.ok());
  EXPECT_TRUE(contains(toDirectory.message(), "it is a directory"))
      << toDirectory.message();
  Status slash = writeFileAtomically(dir + "/new/", bytesOf("x"));
  ASSERT_FALSE(slash.ok());
  EXPECT_TRUE(contains(slash.message(), "it names a directory"))
      << slash.message();

  // An empty name, from inside the directory: no ".tmp" appears in it.
  char previous[4096];
  ASSERT_NE(getcwd(previous, sizeof(previous)), nullptr);
  ASSERT_EQ(chdir(dir.c_str()), 0);
  Status empty = writeFileAtomically("", bytesOf("x"));
  Status emptyCheck = checkWritable("");
  ASSERT_EQ(chdir(previous), 0);
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.message(),
            "cannot write a file with an empty name; name one");
  EXPECT_FALSE(emptyCheck.ok());
  EXPECT_EQ(listing(), "fifo sub");
}

TEST_F(FilesTest, AnUnwritableDirectoryFailsBeforeAndLeavesNothing) {
  std::string file = write("regular", "x");
  std::string under = file + "/out.plan";
  Status check = checkWritable(under);
  ASSERT_FALSE(check.ok());
  EXPECT_TRUE(contains(check.message(), "cannot write '" + under + "'"))
      << check.message();
  Status s = writeFileAtomically(under, bytesOf("x"));
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(contains(s.message(), "Not a directory")) << s.message();
  Status missing = writeFileAtomically(dir + "/no/such/out.plan", bytesOf("x"));
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(contains(missing.message(),
                       "the directory '" + dir + "/no/such' must exist"))
      << missing.message();
  // checkWritable on a writable path creates nothing that stays.
  EXPECT_TRUE(checkWritable(dir + "/fine.plan").ok());
  EXPECT_EQ(listing(), "regular");
}

TEST_F(FilesTest, ACheckpointDirectoryIsCheckedBeforeTheRun) {
  std::string file = write("regular", "x");
  Status under = checkCheckpointDirectory(file + "/ckpt");
  ASSERT_FALSE(under.ok());
  EXPECT_TRUE(contains(under.message(), "cannot create the checkpoint "
                                        "directory '" +
                                            file + "/ckpt'"))
      << under.message();
  Status isFile = checkCheckpointDirectory(file);
  ASSERT_FALSE(isFile.ok());
  EXPECT_TRUE(contains(isFile.message(), "it exists and is not a directory"))
      << isFile.message();
  std::string blocked = dir + "/blocked";
  ASSERT_EQ(mkdir(blocked.c_str(), 0755), 0);
  ASSERT_EQ(mkdir((blocked + "/checkpoint.loomckpt").c_str(), 0755), 0);
  EXPECT_FALSE(checkCheckpointDirectory(blocked).ok());
  EXPECT_FALSE(checkCheckpointDirectory("").ok());
  // A good one is created, and holds nothing afterwards.
  ASSERT_TRUE(checkCheckpointDirectory(dir + "/ckpt").ok());
  EXPECT_EQ(typeOf(dir + "/ckpt"), S_IFDIR);
  EXPECT_EQ(listing(), "blocked ckpt regular");
  DIR *d = opendir((dir + "/ckpt").c_str());
  int entries = 0;
  while (readdir(d))
    ++entries;
  closedir(d);
  EXPECT_EQ(entries, 2); // . and ..
}

} // namespace
