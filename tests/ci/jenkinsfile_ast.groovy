// Parses Jenkinsfiles and job-dsl scripts WITHOUT running them: Groovy's own compiler stops after
// its CONVERSION phase (source -> AST), so nothing is resolved or executed and Jenkins' DSL
// methods (pipeline, stage, sh, pipelineJob...) need not exist. Walks the AST and prints one
// JSON object: {"files": [{"path", "error", "top_level", "calls", "pipeline"}]}.
// Usage: groovy jenkinsfile_ast.groovy FILE...   Exit 1 when any file has a syntax error (its
// compiler message is in "error"), 2 on bad usage.
import groovy.json.JsonOutput
import org.codehaus.groovy.ast.CodeVisitorSupport
import org.codehaus.groovy.ast.expr.ArgumentListExpression
import org.codehaus.groovy.ast.expr.ClosureExpression
import org.codehaus.groovy.ast.expr.ConstantExpression
import org.codehaus.groovy.ast.expr.Expression
import org.codehaus.groovy.ast.expr.GStringExpression
import org.codehaus.groovy.ast.expr.MapExpression
import org.codehaus.groovy.ast.expr.MethodCallExpression
import org.codehaus.groovy.ast.expr.TupleExpression
import org.codehaus.groovy.ast.expr.VariableExpression
import org.codehaus.groovy.ast.stmt.BlockStatement
import org.codehaus.groovy.ast.stmt.ExpressionStatement
import org.codehaus.groovy.ast.stmt.Statement
import org.codehaus.groovy.control.CompilationUnit
import org.codehaus.groovy.control.MultipleCompilationErrorsException
import org.codehaus.groovy.control.Phases

/** Every method call with its constant arguments and the calls it is nested in. */
class CallCollector extends CodeVisitorSupport {
    List<Map> calls = []
    List<String> within = []

    void visitMethodCallExpression(MethodCallExpression call) {
        String name = Ast.nameOf(call)
        calls << [name: name, args: Ast.positional(call), named: Ast.named(call), within: new ArrayList(within)]
        call.objectExpression.visit(this)
        within << name
        call.arguments.visit(this)
        within.remove(within.size() - 1)
    }
}

class Ast {
    static String nameOf(MethodCallExpression call) {
        call.methodAsString ?: call.method.text
    }

    static List<Expression> argsOf(MethodCallExpression call) {
        call.arguments instanceof TupleExpression ? ((TupleExpression) call.arguments).expressions : []
    }

    /** A string for a constant or a GString argument (its source text), else null. */
    static String text(Expression e) {
        if (e instanceof ConstantExpression) return String.valueOf(((ConstantExpression) e).value)
        if (e instanceof GStringExpression) return e.text
        null
    }

    static List<String> positional(MethodCallExpression call) {
        argsOf(call).findAll { it instanceof ConstantExpression || it instanceof GStringExpression }.collect { text(it) }
    }

    /** Named arguments (sh(script: '...'), timeout(time: 90, unit: 'MINUTES')) as strings. */
    static Map<String, String> named(MethodCallExpression call) {
        Map<String, String> out = [:]
        argsOf(call).findAll { it instanceof MapExpression }.each { MapExpression map ->
            map.mapEntryExpressions.each { entry -> out[entry.keyExpression.text] = text(entry.valueExpression) ?: entry.valueExpression.text }
        }
        out
    }

    static List<Statement> statementsOf(Statement code) {
        code instanceof BlockStatement ? ((BlockStatement) code).statements : [code]
    }

    /** The calls written directly in a block (`stage(...) {...}`, `sh '...'`), in order. */
    static List<MethodCallExpression> callsIn(Statement code) {
        statementsOf(code).findResults { st ->
            (st instanceof ExpressionStatement && ((ExpressionStatement) st).expression instanceof MethodCallExpression) ?
                ((ExpressionStatement) st).expression : null
        }
    }

    static ClosureExpression closureOf(MethodCallExpression call) {
        (ClosureExpression) argsOf(call).find { it instanceof ClosureExpression }
    }

    static List<MethodCallExpression> bodyOf(MethodCallExpression call) {
        ClosureExpression closure = closureOf(call)
        closure == null ? [] : callsIn(closure.code)
    }

    static List<Map> deepCalls(Expression e) {
        CallCollector collector = new CallCollector()
        e.visit(collector)
        collector.calls
    }

    /** `agent any` -> {kind: any}; `agent { label 'bench' }` -> {kind: label, label: bench}. */
    static Map agentOf(MethodCallExpression call) {
        List<Expression> args = argsOf(call)
        if (args.size() == 1 && args[0] instanceof VariableExpression) return [kind: ((VariableExpression) args[0]).name, label: null]
        ClosureExpression closure = closureOf(call)
        if (closure == null) return [kind: 'unknown', label: null]
        List<MethodCallExpression> inner = callsIn(closure.code)
        Map label = deepCalls(closure).find { it.name == 'label' && it.args }
        [kind: inner ? nameOf(inner[0]) : 'empty', label: label ? label.args[0] : null]
    }

    static Map stageOf(MethodCallExpression call) {
        List<String> names = positional(call)
        Map stage = [name: names ? names[0] : null, directives: [], steps: [], sh: [], agent: null, when: [], nested: []]
        bodyOf(call).each { MethodCallExpression d ->
            String directive = nameOf(d)
            stage.directives << directive
            if (directive == 'steps') stage.steps = bodyOf(d).collect { nameOf(it) }
            if (directive == 'agent') stage.agent = agentOf(d)
            if (directive == 'when') stage.when = bodyOf(d).collect { nameOf(it) }
            if (directive in ['stages', 'parallel']) stage.nested = stagesIn(d)
        }
        ClosureExpression body = closureOf(call)
        if (body != null) {
            stage.sh = deepCalls(body).findAll { it.name == 'sh' }.collect { Map sh ->
                String command = sh.args ? sh.args[0] : sh.named['script']
                [command: command, literal: !(command ?: '').contains('$')]
            }
        }
        stage
    }

    static List<Map> stagesIn(MethodCallExpression call) {
        bodyOf(call).findAll { nameOf(it) == 'stage' }.collect { stageOf(it) }
    }

    /** The declarative structure of a top-level `pipeline { ... }` call. */
    static Map pipelineOf(MethodCallExpression call) {
        List<MethodCallExpression> sections = bodyOf(call)
        Map out = [sections: sections.collect { nameOf(it) }, agent: null, options: [:], stages: [], post: [:]]
        sections.each { MethodCallExpression s ->
            String section = nameOf(s)
            if (section == 'agent') out.agent = agentOf(s)
            if (section == 'options') bodyOf(s).each { out.options[nameOf(it)] = named(it) + [args: positional(it)] }
            if (section == 'stages') out.stages = stagesIn(s)
            if (section == 'post') bodyOf(s).each { out.post[nameOf(it)] = bodyOf(it).collect { step -> nameOf(step) } }
        }
        out
    }
}

Map describe(File file, int index) {
    Map out = [path: file.path, error: null, top_level: [], calls: [], pipeline: null]
    String unit = "Parsed${index}.groovy"
    CompilationUnit cu = new CompilationUnit()
    cu.addSource(unit, file.getText('UTF-8'))
    try {
        cu.compile(Phases.CONVERSION)
    } catch (MultipleCompilationErrorsException e) {
        out.error = e.message.replace(unit, file.path)
        return out
    }
    def module = cu.AST.modules[0]
    List<Statement> statements = Ast.statementsOf(module.statementBlock)
    out.top_level = statements.collect { st ->
        (st instanceof ExpressionStatement && ((ExpressionStatement) st).expression instanceof MethodCallExpression) ?
            Ast.nameOf((MethodCallExpression) ((ExpressionStatement) st).expression) : st.class.simpleName
    }
    CallCollector collector = new CallCollector()
    module.statementBlock.visit(collector)
    module.methods.each { it.code?.visit(collector) }
    out.calls = collector.calls
    MethodCallExpression pipeline = (MethodCallExpression) Ast.callsIn(module.statementBlock).find { Ast.nameOf(it) == 'pipeline' }
    if (pipeline != null && Ast.closureOf(pipeline) != null) out.pipeline = Ast.pipelineOf(pipeline)
    out
}

if (!args) {
    System.err.println('usage: groovy jenkinsfile_ast.groovy FILE...')
    System.exit(2)
}
List<Map> files = []
args.eachWithIndex { String path, int i -> files << describe(new File(path), i) }
println JsonOutput.toJson([files: files])
System.exit(files.any { it.error != null } ? 1 : 0)
