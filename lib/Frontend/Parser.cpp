//===- Parser.cpp - lexer and recursive-descent parser --------------------===//
//
// Grammar (docs/language.md has the reference):
//
//   file    := { block | model }
//   block   := 'block' NAME '(' [param {',' param}] ')' '{' stmts '}'
//   param   := NAME [':' TYPE] ['=' expr]
//   model   := 'model' NAME '{' stmts '}'
//   stmt    := 'config' NAME '=' expr {',' NAME '=' expr}
//            | 'input' NAME ':' DTYPE '[' exprs ']'
//            | 'param' NAME ':' [DTYPE] '[' exprs ']' 'init' expr
//              ['shard' '(' NAME {',' NAME} ')']
//            | 'repeat' expr ['as' NAME] '{' stmts '}'
//            | 'if' expr '{' stmts '}' ['else' ('{' stmts '}' | if-stmt)]
//            | 'return' expr {',' expr}
//            | NAME {',' NAME} '=' expr
//   expr    := or; or := and {'or' and}; and := not {'and' not}
//   not     := 'not' not | cmp;  cmp := add [CMPOP add]
//   add     := mul {('+'|'-') mul};  mul := unary {('*'|'/'|'%') unary}
//   unary   := '-' unary | primary
//   primary := INT | FLOAT | STRING | true | false | none | '(' expr ')'
//            | '[' [expr {',' expr}] ']' | NAME ['(' args ')' ['as' NAME]]
//
// Newlines end statements, except inside () and [].
//
//===----------------------------------------------------------------------===//

#include "loom/Frontend/Parser.h"

#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Diagnostics.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/ConvertUTF.h"
#include "llvm/Support/Format.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>

using namespace mlir;

namespace loom {
namespace {

enum class Tok {
  Eof,
  Newline,
  Ident,
  Int,
  Float,
  String,
  Punct, // ( ) [ ] { } , : ; = + - * / % == != < <= > >=
};

struct Token {
  Tok kind = Tok::Eof;
  std::string text; // identifier, punctuation, or a string literal's value
  int64_t intValue = 0;
  double floatValue = 0;
  unsigned line = 1, col = 1;
};

const llvm::StringSet<> &keywords() {
  static const llvm::StringSet<> set = {
      "model",  "block", "config", "input", "param",  "init",
      "repeat", "as",    "if",     "else",  "return", "true",
      "false",  "none",  "and",    "or",    "not"};
  return set;
}

bool isDType(llvm::StringRef name) {
  return llvm::is_contained({"f32", "bf16", "f16", "i32", "i64", "i1"}, name);
}

/// Describes a token for messages: `'{'`, `identifier 'x'`, `end of file`.
std::string describe(const Token &tok) {
  switch (tok.kind) {
  case Tok::Eof:
    return "end of file";
  case Tok::Newline:
    return "end of line";
  case Tok::Ident:
    return (keywords().contains(tok.text) ? "keyword '" : "name '") + tok.text +
           "'";
  case Tok::Int:
  case Tok::Float:
    return "number";
  case Tok::String:
    return "string \"" + tok.text + "\"";
  case Tok::Punct:
    return "'" + tok.text + "'";
  }
  return "token";
}

/// The 1-based line and byte column of `offset`, counting lines as the lexer
/// does (`\n`, `\r\n` and a lone `\r` each end one).
std::pair<unsigned, unsigned> lineAndColumn(llvm::StringRef source,
                                            size_t offset) {
  unsigned line = 1, col = 1;
  for (size_t i = 0; i < offset && i < source.size(); ++i) {
    bool lineEnd = source[i] == '\n' ||
                   (source[i] == '\r' &&
                    (i + 1 >= source.size() || source[i + 1] != '\n'));
    if (lineEnd) {
      ++line;
      col = 1;
    } else {
      ++col;
    }
  }
  return {line, col};
}

/// What to say about a character outside ASCII where a token should start
/// (the file is valid UTF-8 by then): the look-alikes that editors and web
/// pages put in for spaces and quotes, by name.
std::string describeNonAscii(llvm::StringRef rest) {
  const auto *begin = reinterpret_cast<const llvm::UTF8 *>(rest.data());
  unsigned length = llvm::getNumBytesForUTF8(rest.front());
  llvm::UTF32 code = 0;
  const llvm::UTF8 *from = begin;
  llvm::UTF32 *to = &code;
  if (length > rest.size() ||
      llvm::ConvertUTF8toUTF32(&from, begin + length, &to, to + 1,
                               llvm::strictConversion) != llvm::conversionOK)
    return "unexpected byte 0x" +
           llvm::utohexstr(static_cast<uint8_t>(rest.front()));
  std::string out = "unexpected character '" + rest.take_front(length).str() +
                    "' (U+" + llvm::utohexstr(code, /*LowerCase=*/false, 4) +
                    ")";
  if (code == 0xA0 || (code >= 0x2000 && code <= 0x200B) || code == 0x202F ||
      code == 0x3000 || code == 0xFEFF)
    out += ", a space that is not a plain space; type a plain space (or "
           "delete it)";
  else if ((code >= 0x2018 && code <= 0x201F) || code == 0x00AB ||
           code == 0x00BB)
    out += ", a typographic quote; strings use the plain double quote \"";
  else
    out += "; names are ASCII letters, digits and '_', and comments (from "
           "'#') may hold any text";
  return out;
}

class Parser {
public:
  Parser(llvm::StringRef source, llvm::StringRef filename, MLIRContext *context)
      : source(source), filename(StringAttr::get(context, filename)) {}

  FailureOr<ast::File> parseFile();

private:
  //===--- Lexer ---------------------------------------------------------===//

  Location locAt(unsigned line, unsigned col) {
    return FileLineColLoc::get(filename, line, col);
  }
  Location loc(const Token &tok) { return locAt(tok.line, tok.col); }

  char peekChar(size_t ahead = 0) const {
    return pos + ahead < source.size() ? source[pos + ahead] : '\0';
  }
  void advanceChar() {
    if (source[pos] == '\n') {
      ++line;
      col = 1;
    } else {
      ++col;
    }
    ++pos;
  }

  LogicalResult lex(Token &tok);
  LogicalResult next() {
    current = lookahead;
    return lex(lookahead);
  }

  //===--- Parser --------------------------------------------------------===//

  /// An error at `tok`; at the end of the file, with a note at the bracket
  /// left open, which is where the mistake usually is.
  InFlightDiagnostic errorAt(const Token &tok) {
    InFlightDiagnostic diag = emitError(loc(tok));
    if (tok.kind == Tok::Eof && !open.empty())
      diag.attachNote(open.back().second)
          << "this '" << open.back().first << "' is not closed";
    return diag;
  }
  bool isPunct(const Token &tok, llvm::StringRef p) const {
    return tok.kind == Tok::Punct && tok.text == p;
  }
  bool isKeyword(const Token &tok, llvm::StringRef k) const {
    return tok.kind == Tok::Ident && tok.text == k;
  }
  /// Consumes `p` or reports what was expected, with `hint` after it.
  LogicalResult expectPunct(llvm::StringRef p, llvm::StringRef what);
  LogicalResult expectName(std::string &name, llvm::StringRef what);
  void skipNewlines() {
    while (current.kind == Tok::Newline && succeeded(next())) {
    }
  }

  FailureOr<ast::BlockDef> parseBlock();
  FailureOr<ast::ModelDef> parseModel();
  LogicalResult parseStatements(std::vector<ast::StmtPtr> &out, bool inModel);
  LogicalResult parseStatement(std::vector<ast::StmtPtr> &out, bool inModel);
  LogicalResult parseTypeAndDims(ast::Stmt &stmt, bool dtypeRequired);
  LogicalResult endStatement();

  ast::ExprPtr parseExpr();
  ast::ExprPtr parseOr();
  ast::ExprPtr parseAnd();
  ast::ExprPtr parseNot();
  ast::ExprPtr parseComparison();
  ast::ExprPtr parseAdditive();
  ast::ExprPtr parseMultiplicative();
  ast::ExprPtr parseUnary();
  ast::ExprPtr parsePrimary();
  ast::ExprPtr makeBinary(const Token &op, ast::ExprPtr lhs, ast::ExprPtr rhs);
  /// operand {op operand}, for the operators `ops`, left to right.
  ast::ExprPtr parseLeftAssociative(ast::ExprPtr (Parser::*operand)(),
                                    std::initializer_list<llvm::StringRef> ops);
  /// Counts one more level of expression tree; fails past the limit.
  bool deeper(int &levels);
  /// One more level of nesting (`depth`); past the limit, reports it at the
  /// current token and fails, so no input overflows the stack.
  bool enter();

  llvm::StringRef source;
  StringAttr filename;
  size_t pos = 0;
  unsigned line = 1, col = 1;
  int nesting = 0; // depth of () and [] (newlines inside them are spaces)
  int depth =
      0; // statement nesting, bounded so input cannot overflow the stack
  Token current, lookahead;
  /// The brackets lexed and not yet closed, innermost last.
  SmallVector<std::pair<char, Location>> open;
};

LogicalResult Parser::lex(Token &tok) {
  for (;;) {
    char c = peekChar();
    if (c == '#') {
      while (pos < source.size() && peekChar() != '\n')
        advanceChar();
      continue;
    }
    if (c == '\r' && peekChar(1) != '\n' && nesting == 0) {
      // A lone carriage return (old Mac line endings) ends a line.
      advanceChar();
      ++line;
      col = 1;
      tok = Token();
      tok.kind = Tok::Newline;
      tok.line = line - 1;
      return success();
    }
    if (c == ' ' || c == '\t' || c == '\r' || (c == '\n' && nesting > 0)) {
      advanceChar();
      continue;
    }
    break;
  }
  tok = Token();
  tok.line = line;
  tok.col = col;
  if (pos >= source.size()) {
    tok.kind = Tok::Eof;
    return success();
  }
  char c = peekChar();
  if (c == '\n') {
    advanceChar();
    tok.kind = Tok::Newline;
    return success();
  }
  if (llvm::isAlpha(c) || c == '_') {
    size_t start = pos;
    while (llvm::isAlnum(peekChar()) || peekChar() == '_')
      advanceChar();
    tok.kind = Tok::Ident;
    tok.text = source.slice(start, pos).str();
    return success();
  }
  if (llvm::isDigit(c) || (c == '.' && llvm::isDigit(peekChar(1)))) {
    size_t start = pos;
    bool isFloat = false;
    while (llvm::isDigit(peekChar()))
      advanceChar();
    if (peekChar() == '.' && llvm::isDigit(peekChar(1))) {
      isFloat = true;
      advanceChar();
      while (llvm::isDigit(peekChar()))
        advanceChar();
    }
    if (peekChar() == 'e' || peekChar() == 'E') {
      size_t digit = (peekChar(1) == '+' || peekChar(1) == '-') ? 2 : 1;
      if (!llvm::isDigit(peekChar(digit)))
        return emitError(loc(tok))
               << "malformed number '" << source.slice(start, pos + 1)
               << "'; an exponent needs digits, as in 1e-5";
      isFloat = true;
      for (size_t i = 0; i < digit; ++i)
        advanceChar();
      while (llvm::isDigit(peekChar()))
        advanceChar();
    }
    if (llvm::isAlpha(peekChar()) || peekChar() == '_')
      return emitError(loc(tok))
             << "malformed number '" << source.slice(start, pos + 1)
             << "'; separate a number from a name with a space "
                "or an operator";
    std::string text = source.slice(start, pos).str();
    errno = 0;
    if (isFloat) {
      tok.kind = Tok::Float;
      tok.floatValue = std::strtod(text.c_str(), nullptr);
      if (errno == ERANGE && std::isinf(tok.floatValue))
        return emitError(loc(tok))
               << "number " << text << " is out of the range of a 64-bit float";
    } else {
      tok.kind = Tok::Int;
      tok.intValue = std::strtoll(text.c_str(), nullptr, 10);
      if (errno == ERANGE)
        return emitError(loc(tok))
               << "integer " << text << " does not fit in 64 bits";
    }
    return success();
  }
  if (c == '"') {
    advanceChar();
    std::string value;
    while (pos < source.size() && peekChar() != '"' && peekChar() != '\n') {
      value += peekChar();
      advanceChar();
    }
    if (peekChar() != '"')
      return emitError(loc(tok))
             << "unterminated string; close it with \" on the "
                "same line";
    advanceChar();
    tok.kind = Tok::String;
    tok.text = value;
    return success();
  }
  static const char *twoChar[] = {"==", "!=", "<=", ">="};
  for (const char *p : twoChar) {
    if (c == p[0] && peekChar(1) == p[1]) {
      advanceChar();
      advanceChar();
      tok.kind = Tok::Punct;
      tok.text = p;
      return success();
    }
  }
  if (llvm::StringRef("()[]{},:;=+-*/%<>").contains(c)) {
    advanceChar();
    tok.kind = Tok::Punct;
    tok.text = std::string(1, c);
    if (c == '(' || c == '[')
      ++nesting;
    else if ((c == ')' || c == ']') && nesting > 0)
      --nesting;
    if (c == '(' || c == '[' || c == '{')
      open.push_back({c, loc(tok)});
    else if ((c == ')' || c == ']' || c == '}') && !open.empty())
      open.pop_back();
    return success();
  }
  InFlightDiagnostic diag = emitError(loc(tok));
  if (static_cast<unsigned char>(c) >= 0x80)
    diag << describeNonAscii(source.drop_front(pos));
  else if (llvm::isPrint(c))
    diag << "unexpected character '" << c
         << "'; names are letters, digits and '_', and comments start with "
            "'#'";
  else
    diag << "unexpected byte 0x" << llvm::utohexstr(static_cast<uint8_t>(c))
         << "; names are letters, digits and '_', and comments start with "
            "'#'";
  return failure();
}

LogicalResult Parser::expectPunct(llvm::StringRef p, llvm::StringRef what) {
  if (isPunct(current, p))
    return next();
  return errorAt(current) << "expected '" << p << "' " << what << ", found "
                          << describe(current);
}

LogicalResult Parser::expectName(std::string &name, llvm::StringRef what) {
  if (current.kind != Tok::Ident || keywords().contains(current.text))
    return errorAt(current)
           << "expected " << what << ", found " << describe(current);
  name = current.text;
  return next();
}

FailureOr<ast::File> Parser::parseFile() {
  ast::File file;
  if (failed(lex(lookahead)) || failed(next()))
    return failure();
  for (;;) {
    skipNewlines();
    if (current.kind == Tok::Eof)
      return file;
    if (isKeyword(current, "block")) {
      FailureOr<ast::BlockDef> block = parseBlock();
      if (failed(block))
        return failure();
      file.blocks.push_back(std::move(*block));
    } else if (isKeyword(current, "model")) {
      FailureOr<ast::ModelDef> model = parseModel();
      if (failed(model))
        return failure();
      file.models.push_back(std::move(*model));
    } else {
      return errorAt(current) << "expected 'model NAME { ... }' or 'block "
                                 "NAME(...) { ... }' at the top level, found "
                              << describe(current);
    }
  }
}

FailureOr<ast::BlockDef> Parser::parseBlock() {
  ast::BlockDef block{"", loc(current), {}, {}};
  if (failed(next()) || failed(expectName(block.name, "the block's name")) ||
      failed(expectPunct("(", "after the block's name")))
    return failure();
  while (!isPunct(current, ")")) {
    ast::BlockParameter param{"", "", nullptr, loc(current)};
    if (failed(expectName(param.name, "a parameter name")))
      return failure();
    if (isPunct(current, ":")) {
      if (failed(next()))
        return failure();
      static const char *types[] = {"tensor", "int", "float", "bool", "string"};
      if (current.kind != Tok::Ident ||
          !llvm::is_contained(types, current.text))
        return errorAt(current) << "expected a parameter type (tensor, int, "
                                   "float, bool or string), found "
                                << describe(current);
      param.type = current.text;
      if (failed(next()))
        return failure();
    }
    if (isPunct(current, "=")) {
      if (failed(next()) || !(param.defaultValue = parseExpr()))
        return failure();
    }
    block.parameters.push_back(std::move(param));
    if (isPunct(current, ",")) {
      if (failed(next()))
        return failure();
    } else if (!isPunct(current, ")")) {
      return errorAt(current) << "expected ',' or ')' in the parameter list "
                                 "of block '"
                              << block.name << "', found " << describe(current);
    }
  }
  if (failed(next()) || failed(expectPunct("{", "to open the block's body")) ||
      failed(parseStatements(block.body, /*inModel=*/false)))
    return failure();
  return block;
}

FailureOr<ast::ModelDef> Parser::parseModel() {
  ast::ModelDef model{"", loc(current), {}};
  if (failed(next()) || failed(expectName(model.name, "the model's name")) ||
      failed(expectPunct("{", "to open the model's body")) ||
      failed(parseStatements(model.body, /*inModel=*/true)))
    return failure();
  return model;
}

/// Parses statements up to and including the closing '}'.
LogicalResult Parser::parseStatements(std::vector<ast::StmtPtr> &out,
                                      bool inModel) {
  if (++depth > 64)
    return errorAt(current) << "statements nest more than 64 deep (the bodies "
                               "of `if`, `else if` and `repeat` count)";
  for (;;) {
    skipNewlines();
    if (isPunct(current, "}")) {
      --depth;
      return next();
    }
    if (current.kind == Tok::Eof)
      return errorAt(current) << "expected '}' before the end of the file; "
                                 "a '{' is not closed";
    if (failed(parseStatement(out, inModel)))
      return failure();
  }
}

LogicalResult Parser::endStatement() {
  if (current.kind == Tok::Newline || isPunct(current, ";"))
    return next();
  if (isPunct(current, "}") || current.kind == Tok::Eof)
    return success();
  if (isKeyword(current, "as"))
    return errorAt(current) << "`as NAME` names a call: it follows the call's "
                               "closing parenthesis, as in `linear(x, 64) as "
                               "proj`";
  return errorAt(current) << "expected the end of the statement (a new line "
                             "or ';'), found "
                          << describe(current);
}

LogicalResult Parser::parseTypeAndDims(ast::Stmt &stmt, bool dtypeRequired) {
  if (current.kind == Tok::Ident && isDType(current.text)) {
    stmt.elementType = current.text;
    if (failed(next()))
      return failure();
  } else if (dtypeRequired || current.kind == Tok::Ident) {
    return errorAt(current) << "expected an element type (f32, bf16, f16, "
                               "i32, i64 or i1), found "
                            << describe(current);
  }
  if (failed(expectPunct("[", "to open the list of dimensions")))
    return failure();
  while (!isPunct(current, "]")) {
    ast::ExprPtr dim = parseExpr();
    if (!dim)
      return failure();
    stmt.dims.push_back(std::move(dim));
    if (isPunct(current, ",")) {
      if (failed(next()))
        return failure();
    } else if (!isPunct(current, "]")) {
      return errorAt(current) << "expected ',' or ']' in the dimensions, found "
                              << describe(current);
    }
  }
  return next();
}

LogicalResult Parser::parseStatement(std::vector<ast::StmtPtr> &out,
                                     bool inModel) {
  Location start = loc(current);
  if (isKeyword(current, "config")) {
    if (!inModel)
      return errorAt(current) << "'config' belongs in a model; a block takes "
                                 "its settings as parameters";
    if (depth != 1)
      return errorAt(current) << "'config' belongs at the top of the model, "
                                 "not inside `if` or `repeat`";
    if (failed(next()))
      return failure();
    for (;;) {
      auto stmt =
          std::make_unique<ast::Stmt>(ast::StmtKind::Config, loc(current));
      std::string name;
      if (failed(expectName(name, "a config name")) ||
          failed(expectPunct("=", "after the config name (config NAME = "
                                  "VALUE)")))
        return failure();
      stmt->names.push_back(name);
      if (!(stmt->value = parseExpr()))
        return failure();
      out.push_back(std::move(stmt));
      if (!isPunct(current, ","))
        break;
      if (failed(next()))
        return failure();
    }
    return endStatement();
  }
  if (isKeyword(current, "input")) {
    if (!inModel)
      return errorAt(current) << "'input' belongs in a model; a block takes "
                                 "tensors as parameters";
    if (depth != 1)
      return errorAt(current) << "'input' belongs at the top of the model, "
                                 "not inside `if` or `repeat`";
    auto stmt = std::make_unique<ast::Stmt>(ast::StmtKind::Input, start);
    std::string name;
    if (failed(next()) || failed(expectName(name, "the input's name")) ||
        failed(expectPunct(":", "after the input's name (input NAME: "
                                "i32[batch, seq])")) ||
        failed(parseTypeAndDims(*stmt, /*dtypeRequired=*/true)))
      return failure();
    stmt->names.push_back(name);
    out.push_back(std::move(stmt));
    return endStatement();
  }
  if (isKeyword(current, "param")) {
    auto stmt = std::make_unique<ast::Stmt>(ast::StmtKind::Param, start);
    std::string name;
    if (failed(next()) || failed(expectName(name, "the parameter's name")) ||
        failed(expectPunct(":", "after the parameter's name (param NAME: "
                                "[dims] init normal(std = 0.02))")) ||
        failed(parseTypeAndDims(*stmt, /*dtypeRequired=*/false)))
      return failure();
    stmt->names.push_back(name);
    if (!isKeyword(current, "init"))
      return errorAt(current) << "expected 'init' and an initializer after the "
                                 "parameter's dimensions (init normal(std = "
                                 "0.02), init zeros, ...), found "
                              << describe(current);
    if (failed(next()) || !(stmt->init = parseExpr()))
      return failure();
    // An optional pinned sharding: shard(none, tp), one entry per dimension.
    if (isKeyword(current, "shard")) {
      if (failed(next()) ||
          failed(expectPunct("(", "after 'shard' (shard(none, tp): one mesh "
                                  "axis or none per dimension)")))
        return failure();
      for (;;) {
        if (current.kind != Tok::Ident)
          return errorAt(current) << "expected a mesh axis (dp, pp, tp) or "
                                     "none in shard(...), found "
                                  << describe(current);
        stmt->shard.push_back(current.text);
        if (failed(next()))
          return failure();
        if (!isPunct(current, ","))
          break;
        if (failed(next()))
          return failure();
      }
      if (failed(expectPunct(")", "to close shard(...)")))
        return failure();
    }
    out.push_back(std::move(stmt));
    return endStatement();
  }
  if (isKeyword(current, "repeat")) {
    auto stmt = std::make_unique<ast::Stmt>(ast::StmtKind::Repeat, start);
    stmt->prefix = "layers";
    if (failed(next()) || !(stmt->value = parseExpr()))
      return failure();
    if (isKeyword(current, "as")) {
      if (failed(next()) ||
          failed(expectName(stmt->prefix, "the layers' name prefix")))
        return failure();
    }
    if (failed(expectPunct("{", "to open the repeated statements")) ||
        failed(parseStatements(stmt->body, inModel)))
      return failure();
    out.push_back(std::move(stmt));
    return endStatement();
  }
  if (isKeyword(current, "if")) {
    auto stmt = std::make_unique<ast::Stmt>(ast::StmtKind::If, start);
    if (failed(next()) || !(stmt->value = parseExpr()) ||
        failed(expectPunct("{", "after the condition")) ||
        failed(parseStatements(stmt->body, inModel)))
      return failure();
    if (isKeyword(current, "else")) {
      if (failed(next()))
        return failure();
      if (isKeyword(current, "if")) {
        // An `else if` chain nests in the tree: it counts as nesting.
        if (++depth > 64)
          return errorAt(current) << "statements nest more than 64 deep (an "
                                     "`else if` chain counts as nesting)";
        LogicalResult nested = parseStatement(stmt->elseBody, inModel);
        --depth;
        if (failed(nested))
          return failure();
        out.push_back(std::move(stmt));
        return success();
      }
      if (failed(expectPunct("{", "after 'else'")) ||
          failed(parseStatements(stmt->elseBody, inModel)))
        return failure();
    }
    out.push_back(std::move(stmt));
    return endStatement();
  }
  if (isKeyword(current, "return")) {
    auto stmt = std::make_unique<ast::Stmt>(ast::StmtKind::Return, start);
    if (failed(next()))
      return failure();
    for (;;) {
      ast::ExprPtr value = parseExpr();
      if (!value)
        return failure();
      stmt->values.push_back(std::move(value));
      if (!isPunct(current, ","))
        break;
      if (failed(next()))
        return failure();
    }
    out.push_back(std::move(stmt));
    return endStatement();
  }
  if (current.kind == Tok::Ident && !keywords().contains(current.text) &&
      (isPunct(lookahead, "=") || isPunct(lookahead, ","))) {
    auto stmt = std::make_unique<ast::Stmt>(ast::StmtKind::Assign, start);
    for (;;) {
      std::string name;
      if (failed(expectName(name, "a name to assign")))
        return failure();
      stmt->names.push_back(name);
      if (!isPunct(current, ","))
        break;
      if (failed(next()))
        return failure();
    }
    if (failed(expectPunct("=", "after the names being assigned")) ||
        !(stmt->value = parseExpr()))
      return failure();
    out.push_back(std::move(stmt));
    return endStatement();
  }
  if (current.kind == Tok::Ident && !keywords().contains(current.text) &&
      isPunct(lookahead, "(")) {
    // A call for its effect, such as check(cond, "message"): an assignment
    // to no names.
    auto stmt = std::make_unique<ast::Stmt>(ast::StmtKind::Assign, start);
    if (!(stmt->value = parseExpr()))
      return failure();
    out.push_back(std::move(stmt));
    return endStatement();
  }
  if (isKeyword(current, "else"))
    return errorAt(current) << "`else` must follow the `}` of its `if` on the "
                               "same line: write `} else {`";
  if (current.kind == Tok::Ident && keywords().contains(current.text))
    return errorAt(current)
           << "'" << current.text << "' cannot start a statement here";
  return errorAt(current)
         << "expected a statement (NAME = EXPR, param, repeat, if, return"
         << (inModel ? ", config, input" : "") << "), found "
         << describe(current);
}

ast::ExprPtr Parser::makeBinary(const Token &op, ast::ExprPtr lhs,
                                ast::ExprPtr rhs) {
  auto expr = std::make_unique<ast::Expr>(ast::ExprKind::Binary, loc(op));
  expr->text = op.text;
  expr->operands.push_back(std::move(lhs));
  expr->operands.push_back(std::move(rhs));
  return expr;
}

bool Parser::deeper(int &levels) {
  ++levels;
  return enter();
}

bool Parser::enter() {
  if (++depth <= 256)
    return true;
  errorAt(current) << "expression nests more than 256 deep (parentheses, "
                      "brackets, calls and operators in a row count too); "
                      "split it over several assignments";
  return false;
}

ast::ExprPtr Parser::parseExpr() {
  if (!enter())
    return nullptr;
  ast::ExprPtr expr = parseOr();
  --depth;
  return expr;
}

ast::ExprPtr Parser::parseOr() {
  return parseLeftAssociative(&Parser::parseAnd, {"or"});
}

ast::ExprPtr Parser::parseAnd() {
  return parseLeftAssociative(&Parser::parseNot, {"and"});
}

ast::ExprPtr
Parser::parseLeftAssociative(ast::ExprPtr (Parser::*operand)(),
                             std::initializer_list<llvm::StringRef> ops) {
  auto isOperator = [&] {
    return (current.kind == Tok::Punct || current.kind == Tok::Ident) &&
           llvm::is_contained(ops, current.text);
  };
  int levels = 0;
  ast::ExprPtr lhs = (this->*operand)();
  while (lhs && isOperator()) {
    Token op = current;
    if (!deeper(levels) || failed(next()))
      return nullptr;
    ast::ExprPtr rhs = (this->*operand)();
    if (!rhs)
      return nullptr;
    lhs = makeBinary(op, std::move(lhs), std::move(rhs));
  }
  depth -= levels;
  return lhs;
}

ast::ExprPtr Parser::parseNot() {
  if (!isKeyword(current, "not"))
    return parseComparison();
  auto expr = std::make_unique<ast::Expr>(ast::ExprKind::Unary, loc(current));
  expr->text = "not";
  int levels = 0;
  if (!deeper(levels) || failed(next()))
    return nullptr;
  ast::ExprPtr operand = parseNot();
  if (!operand)
    return nullptr;
  depth -= levels;
  expr->operands.push_back(std::move(operand));
  return expr;
}

ast::ExprPtr Parser::parseComparison() {
  ast::ExprPtr lhs = parseAdditive();
  static const char *ops[] = {"==", "!=", "<", "<=", ">", ">="};
  if (lhs && current.kind == Tok::Punct &&
      llvm::is_contained(ops, current.text)) {
    Token op = current;
    if (failed(next()))
      return nullptr;
    ast::ExprPtr rhs = parseAdditive();
    if (!rhs)
      return nullptr;
    return makeBinary(op, std::move(lhs), std::move(rhs));
  }
  return lhs;
}

ast::ExprPtr Parser::parseAdditive() {
  return parseLeftAssociative(&Parser::parseMultiplicative, {"+", "-"});
}

ast::ExprPtr Parser::parseMultiplicative() {
  return parseLeftAssociative(&Parser::parseUnary, {"*", "/", "%"});
}

ast::ExprPtr Parser::parseUnary() {
  if (!isPunct(current, "-"))
    return parsePrimary();
  auto expr = std::make_unique<ast::Expr>(ast::ExprKind::Unary, loc(current));
  expr->text = "-";
  if (failed(next()) || !enter())
    return nullptr;
  ast::ExprPtr operand = parseUnary();
  --depth;
  if (!operand)
    return nullptr;
  expr->operands.push_back(std::move(operand));
  return expr;
}

ast::ExprPtr Parser::parsePrimary() {
  Token tok = current;
  auto make = [&](ast::ExprKind kind) {
    return std::make_unique<ast::Expr>(kind, loc(tok));
  };
  switch (tok.kind) {
  case Tok::Int: {
    auto expr = make(ast::ExprKind::Int);
    expr->intValue = tok.intValue;
    return succeeded(next()) ? std::move(expr) : nullptr;
  }
  case Tok::Float: {
    auto expr = make(ast::ExprKind::Float);
    expr->floatValue = tok.floatValue;
    return succeeded(next()) ? std::move(expr) : nullptr;
  }
  case Tok::String: {
    auto expr = make(ast::ExprKind::String);
    expr->text = tok.text;
    return succeeded(next()) ? std::move(expr) : nullptr;
  }
  case Tok::Punct:
    if (tok.text == "(") {
      if (failed(next()))
        return nullptr;
      ast::ExprPtr inner = parseExpr();
      if (!inner || failed(expectPunct(")", "to close the parenthesis")))
        return nullptr;
      return inner;
    }
    if (tok.text == "[") {
      auto list = make(ast::ExprKind::List);
      if (failed(next()))
        return nullptr;
      while (!isPunct(current, "]")) {
        ast::ExprPtr element = parseExpr();
        if (!element)
          return nullptr;
        list->operands.push_back(std::move(element));
        if (isPunct(current, ",")) {
          if (failed(next()))
            return nullptr;
        } else if (!isPunct(current, "]")) {
          errorAt(current) << "expected ',' or ']' in the list, found "
                           << describe(current);
          return nullptr;
        }
      }
      return succeeded(next()) ? std::move(list) : nullptr;
    }
    break;
  case Tok::Ident: {
    if (tok.text == "true" || tok.text == "false") {
      auto expr = make(ast::ExprKind::Bool);
      expr->boolValue = tok.text == "true";
      return succeeded(next()) ? std::move(expr) : nullptr;
    }
    if (tok.text == "none")
      return succeeded(next()) ? make(ast::ExprKind::None) : nullptr;
    if (keywords().contains(tok.text))
      break;
    if (failed(next()))
      return nullptr;
    if (!isPunct(current, "(")) {
      auto name = make(ast::ExprKind::Name);
      name->text = tok.text;
      return name;
    }
    auto call = make(ast::ExprKind::Call);
    call->text = tok.text;
    if (failed(next()))
      return nullptr;
    while (!isPunct(current, ")")) {
      std::string keyword;
      if (current.kind == Tok::Ident && isPunct(lookahead, "=")) {
        keyword = current.text;
        if (failed(next()) || failed(next()))
          return nullptr;
      } else if (!call->keywords.empty() && !call->keywords.back().empty()) {
        errorAt(current) << "a positional argument cannot follow a keyword "
                            "argument; name it (NAME = VALUE) or move it "
                            "before the keyword arguments";
        return nullptr;
      }
      ast::ExprPtr arg = parseExpr();
      if (!arg)
        return nullptr;
      call->operands.push_back(std::move(arg));
      call->keywords.push_back(keyword);
      if (isPunct(current, ",")) {
        if (failed(next()))
          return nullptr;
      } else if (!isPunct(current, ")")) {
        errorAt(current) << "expected ',' or ')' in the arguments of '"
                         << call->text << "', found " << describe(current);
        return nullptr;
      }
    }
    if (failed(next()))
      return nullptr;
    if (isKeyword(current, "as")) {
      if (failed(next()))
        return nullptr;
      if (current.kind != Tok::Ident || keywords().contains(current.text)) {
        errorAt(current) << "expected an instance name after 'as' (or '_' "
                            "for none), found "
                         << describe(current);
        return nullptr;
      }
      call->instanceName = current.text;
      if (failed(next()))
        return nullptr;
    }
    return call;
  }
  default:
    break;
  }
  errorAt(tok) << "expected an expression, found " << describe(tok);
  return nullptr;
}

} // namespace

FailureOr<ast::File> parseModelFile(llvm::StringRef source,
                                    llvm::StringRef filename,
                                    MLIRContext *context) {
  // A UTF-8 byte-order mark is not part of the text (nor of its columns).
  if (source.starts_with("\xEF\xBB\xBF"))
    source = source.drop_front(3);
  // Bytes that are not text are reported where they are, so that an editor
  // can find them; a binary file would lex into nonsense.
  auto at = [&](size_t offset) {
    auto [line, col] = lineAndColumn(source, offset);
    return emitError(FileLineColLoc::get(context, filename, line, col));
  };
  for (size_t i = 0; i < source.size(); ++i) {
    unsigned char c = source[i];
    if (c == 0 || (c < 0x20 && c != '\n' && c != '\t' && c != '\r') ||
        c == 0x7f)
      return at(i) << "this is not a text file (byte 0x"
                   << llvm::toHex(llvm::ArrayRef<uint8_t>(c),
                                  /*LowerCase=*/true)
                   << "); a model file is UTF-8 text";
  }
  const auto *begin = reinterpret_cast<const llvm::UTF8 *>(source.data());
  if (!llvm::isLegalUTF8String(&begin, begin + source.size())) {
    size_t offset = reinterpret_cast<const char *>(begin) - source.data();
    // The source manager prints no caret under a line that is not ASCII, so
    // the message also quotes the text just before the byte.
    llvm::StringRef before = source.take_front(offset);
    before = before.drop_front(before.find_last_of("\r\n") + 1).ltrim();
    if (before.size() > 24) {
      before = before.take_back(24);
      while (!before.empty() && (uint8_t(before.front()) & 0xC0) == 0x80)
        before = before.drop_front();
    }
    InFlightDiagnostic diag = at(offset);
    diag << "invalid UTF-8 byte 0x"
         << llvm::toHex(llvm::ArrayRef<uint8_t>(uint8_t(source[offset])),
                        /*LowerCase=*/true);
    if (!before.empty())
      diag << " after `" << before << "`";
    diag << "; a model file is UTF-8 text (save it as UTF-8, or remove the "
            "byte)";
    return diag;
  }
  return Parser(source, filename, context).parseFile();
}

} // namespace loom
